// xborder-gateway auditor console. Plain DOM, no framework, no network access but this server's /v1 API
// (the Content-Security-Policy allows nothing else). The bearer token and the pinned verifier keys live
// in this page's memory only: never in localStorage, sessionStorage, cookies or the URL.
"use strict";

(() => {
  const I18N = {
    en: {
      title: "Audit console", signin: "Sign in", token: "Auditor token", keys: "Pinned verifier keys",
      keysHelp: "One key per line, <name>+<hash>+<key>, from the trust bundle the authorities exchanged " +
        "(log key of this site; witness key of the counterpart). They are not taken from this server.",
      loadKeys: "Load keys from a file", enter: "Enter", signout: "Sign out",
      search: "Search", declaration: "Declaration number", messageId: "Message id", type: "Event type",
      since: "From (UTC)", until: "To (UTC)", outcome: "Outcome", find: "Find", noResults: "No entries.",
      index: "Index", time: "Time", event: "Event", key: "Declaration", message: "Message", result: "Outcome",
      detail: "Entry", verify: "Verify in this browser", verified: "Verified", notVerified: "NOT VERIFIED",
      timeline: "Timeline of declaration", checkpoint: "Checkpoint status", size: "Tree size",
      origin: "Origin", logSig: "Log signature", witness: "Witness cosignatures", none: "none",
      lag: "Entries not yet in a checkpoint", refresh: "Refresh", more: "More", back: "Back",
      badToken: "The server refused the token.", badKey: "Key not accepted", needKey: "Pin at least one log key.",
      trust: "Trust: this page's script comes from the server it checks. For independent checks keep the " +
        "standalone verifier page offline and feed it exported bundles.",
      verifyAll: "Verify every entry", log: "Log", crossBorder: "both logs (this site and the counterpart)",
      noLogKey: "no pinned key for this log",
      ownLog: "this site's log", counterpartLog: "the counterpart's log", cosigned: "cosigned",
      notCosigned: "not cosigned yet", unreachable: "counterpart unreachable", noCheckpoint: "no checkpoint yet",
      latestCp: "Latest checkpoint", cosignedCp: "Latest cosigned checkpoint", lagLabel: "Lag", entries: "entries",
      seconds: "s", limit: "limit", ago: "ago", issued: "issued", skew: "Clock skew",
      noPinnedWitness: "no cosignature by a pinned witness key of the other authority",
      lagHelp: "entries not covered by a cosigned checkpoint / how long the oldest of them has waited",
    },
    vi: {
      title: "Bảng điều khiển kiểm toán", signin: "Đăng nhập", token: "Mã truy cập kiểm toán viên",
      keys: "Khóa xác minh đã ghim",
      keysHelp: "Mỗi dòng một khóa, <tên>+<băm>+<khóa>, lấy từ gói tin cậy mà hai cơ quan đã trao đổi " +
        "(khóa nhật ký của phía này; khóa nhân chứng của phía bên kia). Không lấy từ máy chủ này.",
      loadKeys: "Nạp khóa từ tệp", enter: "Vào", signout: "Đăng xuất",
      search: "Tìm kiếm", declaration: "Số tờ khai", messageId: "Mã thông điệp", type: "Loại sự kiện",
      since: "Từ (UTC)", until: "Đến (UTC)", outcome: "Kết quả", find: "Tìm", noResults: "Không có mục nào.",
      index: "Chỉ số", time: "Thời gian", event: "Sự kiện", key: "Tờ khai", message: "Thông điệp",
      result: "Kết quả", detail: "Mục nhật ký", verify: "Xác minh trong trình duyệt", verified: "Đã xác minh",
      notVerified: "KHÔNG XÁC MINH ĐƯỢC", timeline: "Dòng thời gian của tờ khai", checkpoint: "Trạng thái điểm kiểm",
      size: "Kích thước cây", origin: "Nguồn gốc", logSig: "Chữ ký nhật ký", witness: "Chữ ký đồng xác nhận",
      none: "không có", lag: "Mục chưa có trong điểm kiểm", refresh: "Làm mới", more: "Thêm", back: "Quay lại",
      badToken: "Máy chủ từ chối mã truy cập.", badKey: "Khóa không hợp lệ", needKey: "Hãy ghim ít nhất một khóa nhật ký.",
      trust: "Tin cậy: mã của trang này do chính máy chủ được kiểm tra cung cấp. Để kiểm tra độc lập, hãy giữ " +
        "trang xác minh độc lập ngoại tuyến và nạp các gói đã xuất.",
      verifyAll: "Xác minh mọi mục", log: "Nhật ký", crossBorder: "cả hai nhật ký (phía này và phía bên kia)",
      noLogKey: "chưa ghim khóa của nhật ký này",
      ownLog: "nhật ký của phía này", counterpartLog: "nhật ký của phía bên kia", cosigned: "đã đồng xác nhận",
      notCosigned: "chưa được đồng xác nhận", unreachable: "không kết nối được phía bên kia",
      noCheckpoint: "chưa có điểm kiểm", latestCp: "Điểm kiểm mới nhất", cosignedCp: "Điểm kiểm đã đồng xác nhận",
      lagLabel: "Độ trễ", entries: "mục", seconds: "giây", limit: "ngưỡng", ago: "trước", issued: "phát hành",
      skew: "Lệch đồng hồ", noPinnedWitness: "không có chữ ký đồng xác nhận của khóa nhân chứng đã ghim của phía bên kia",
      lagHelp: "số mục chưa nằm trong điểm kiểm đã đồng xác nhận / thời gian mục cũ nhất đã chờ",
    },
    zh: {
      title: "审计控制台", signin: "登录", token: "审计员令牌", keys: "已固定的验证密钥",
      keysHelp: "每行一个密钥，<名称>+<哈希>+<密钥>，来自双方交换的信任包（本方日志密钥；对方见证密钥）。不从本服务器获取。",
      loadKeys: "从文件加载密钥", enter: "进入", signout: "退出",
      search: "搜索", declaration: "报关单号", messageId: "消息编号", type: "事件类型", since: "起 (UTC)",
      until: "止 (UTC)", outcome: "结果", find: "查找", noResults: "无条目。", index: "序号", time: "时间",
      event: "事件", key: "报关单", message: "消息", result: "结果", detail: "条目", verify: "在浏览器中验证",
      verified: "已验证", notVerified: "未通过验证", timeline: "报关单时间线", checkpoint: "检查点状态",
      size: "树大小", origin: "来源", logSig: "日志签名", witness: "见证联署", none: "无",
      lag: "尚未纳入检查点的条目", refresh: "刷新", more: "更多", back: "返回", badToken: "服务器拒绝了该令牌。",
      badKey: "密钥无效", needKey: "请至少固定一个日志密钥。",
      trust: "信任说明：本页面脚本来自被检查的服务器。如需独立核验，请离线保存独立验证页面并载入导出的证明包。",
      verifyAll: "验证全部条目", log: "日志", crossBorder: "双方日志（本方与对方）", noLogKey: "未固定该日志的密钥",
      ownLog: "本方日志", counterpartLog: "对方日志", cosigned: "已联署", notCosigned: "尚未联署",
      unreachable: "无法连接对方", noCheckpoint: "尚无检查点", latestCp: "最新检查点", cosignedCp: "最新联署检查点",
      lagLabel: "滞后", entries: "条", seconds: "秒", limit: "阈值", ago: "前", issued: "签发", skew: "时钟偏差",
      noPinnedWitness: "无对方已固定见证密钥的联署", lagHelp: "未被联署检查点覆盖的条目数 / 其中最早条目已等待的时间",
    },
  };

  const state = { token: null, keys: [], lang: "vi", origin: null };
  const $ = (sel) => document.querySelector(sel);
  const t = (k) => (I18N[state.lang] || I18N.en)[k] || I18N.en[k] || k;

  function el(tag, attrs = {}, ...children) {
    const node = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs)) {
      if (k === "class") node.className = v;
      else if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
      else node.setAttribute(k, v);
    }
    for (const c of children.flat()) node.append(c instanceof Node ? c : document.createTextNode(String(c ?? "")));
    return node;
  }

  async function api(path) {
    const res = await fetch(path, { headers: { Authorization: `Bearer ${state.token}` }, cache: "no-store" });
    if (res.status === 401) throw new Error(t("badToken"));
    const type = res.headers.get("Content-Type") || "";
    const body = type.startsWith("application/json") ? await res.json() : await res.text();
    if (!res.ok) throw new Error((body && body.message) || `HTTP ${res.status}`);
    return body;
  }

  function setLabels() {
    document.documentElement.lang = state.lang;
    document.title = `xborder · ${t("title")}`;
    for (const node of document.querySelectorAll("[data-i18n]")) node.textContent = t(node.dataset.i18n);
  }

  function status(text, ok) {
    const box = $("#status");
    box.textContent = text || "";
    box.className = ok === undefined ? "" : ok ? "ok" : "bad";
  }

  // --- sign in --------------------------------------------------------------------------------------
  async function signIn(ev) {
    ev.preventDefault();
    const token = $("#token").value.trim();
    const keys = [];
    for (const line of $("#keys").value.split("\n").map((s) => s.trim()).filter(Boolean)) {
      try { keys.push(await XbVerify.parseVerifierKey(line)); } catch (err) {
        status(`${t("badKey")}: ${err.message}`, false);
        return;
      }
    }
    if (!keys.some((k) => k.type === 0x01)) { status(t("needKey"), false); return; }
    state.token = token;
    state.keys = keys;
    try {
      await api("/v1/tree");
    } catch (err) {
      state.token = null;
      status(err.message, false);
      return;
    }
    $("#token").value = ""; // the token stays in this closure only
    $("#signin").hidden = true;
    $("#main").hidden = false;
    status("");
    await showCheckpoint();
  }

  async function loadKeyFile(ev) {
    const file = ev.target.files[0];
    if (!file) return;
    const text = await file.text();
    const found = text.match(/[^\s"'+]+\+[0-9a-f]{8}\+[A-Za-z0-9+/]{43}=/g) || [];
    $("#keys").value = [...new Set([...$("#keys").value.split("\n").filter(Boolean), ...found])].join("\n");
  }

  function signOut() {
    state.token = null;
    state.keys = [];
    $("#main").hidden = true;
    $("#signin").hidden = false;
    $("#results").replaceChildren();
    $("#detail").replaceChildren();
  }

  // --- checkpoint status of both logs (issue 12 item 5) ----------------------------------------------
  // /v1/status hands over each log's latest checkpoint and latest cosigned checkpoint verbatim, with the lag
  // figures of the site that holds the log. Each note is checked HERE against the pinned keys (STATUS-2):
  // the log key of that log (origin ending /vn or /cn) and the witness key of the OTHER authority (name
  // ending /witness/<other>); the lag in entries is taken from the checkpoint size verified here, and the
  // colour is recomputed from what was verified, never taken from the server's "level".
  function pinnedWitnesses(authority) {
    const other = authority === "VN" ? "cn" : "vn";
    return state.keys.filter((k) => k.type === 0x04 && k.name.endsWith(`/witness/${other}`)).map((k) => k.name);
  }

  const secs = (s) => (s === null || s === undefined ? "?" : `${Math.round(s)} ${t("seconds")}`);
  const when = (iso) => {
    if (!iso) return "";
    const age = Math.max(0, (Date.now() - Date.parse(iso)) / 1000);
    return `${t("issued")} ${iso} (${secs(age)} ${t("ago")})`;
  };

  async function checkNote(note, origin) {
    const c = await XbVerify.verifyNote(note, state.keys);
    const ok = origin !== null && c.errors.length === 0 && c.log.includes(origin) && c.checkpoint.origin === origin;
    return { c, ok };
  }

  // {level: ok|warn|bad, state: text, rows: [[label, text, class, testid]]}
  async function checkLog(log, limits) {
    const origin = pinnedOrigin(log.authority);
    const out = { level: "bad", state: "", rows: [] };
    if (log.problem) { out.state = `${t("unreachable")}: ${log.problem}`; return out; }
    out.rows.push([t("origin"), log.origin || ""], [t("size"), String(log.size)]);
    if (!log.latest) { out.state = t("noCheckpoint"); return out; }
    if (!origin) { out.state = `${t("notVerified")}: ${t("noLogKey")}`; return out; }
    const latest = await checkNote(log.latest.note, origin);
    const latestOk = latest.ok && latest.c.checkpoint.size === log.latest.size && log.latest.size <= log.size;
    out.rows.push([t("latestCp"), `${log.latest.size} · ${when(log.latest.issued)}`],
      [t("logSig"), latestOk ? `${t("verified")} (${latest.c.log.join(", ")})`
        : `${t("notVerified")} ${latest.c.errors.join("; ")}`, latestOk ? "ok" : "bad",
      log.source === "self" ? "checkpoint-log" : `checkpoint-log-${log.authority}`]);
    let covered = 0, problem = null, witnessText = t("none"), cosigned = false;
    if (log.cosigned) {
      const cos = await checkNote(log.cosigned.note, origin);
      const pinned = pinnedWitnesses(log.authority);
      const wits = cos.c.witnesses.filter((w) => pinned.includes(w.name));
      if (!cos.ok || cos.c.checkpoint.size !== log.cosigned.size || log.cosigned.size > log.size) {
        problem = `${t("notVerified")} ${cos.c.errors.join("; ")}`;
      } else if (!wits.length) {
        witnessText = t("noPinnedWitness");
      } else {
        cosigned = true;
        covered = cos.c.checkpoint.size;
        witnessText = wits.map((w) => `${w.name} @ ${new Date(w.time * 1000).toISOString()}`).join("; ");
      }
      out.rows.push([t("cosignedCp"), `${log.cosigned.size} · ${when(log.cosigned.issued)}`]);
    }
    out.rows.push([t("witness"), problem || witnessText, problem ? "bad" : cosigned ? "ok" : "warn",
      log.source === "self" ? "checkpoint-witness" : `checkpoint-witness-${log.authority}`]);
    const entries = log.size - covered;
    // seconds: the holder's figure, valid for the cosigned size it reported (and for none); otherwise unknown
    const seconds = entries === 0 ? 0
      : (cosigned && covered === log.cosigned.size) || !log.cosigned ? log.lag_seconds : null;
    const over = entries > limits.entries || (seconds !== null && seconds > limits.seconds);
    const lagText = `${entries} ${t("entries")} / ${secs(seconds)}`;
    out.rows.push([t("lagLabel"), `${lagText} (${t("limit")} ${limits.entries} ${t("entries")} / ` +
      `${secs(limits.seconds)})`, over ? "bad" : "", `lag-${log.authority}`]);
    if (log.clock_skew_seconds > 0) out.rows.push([t("skew"), secs(log.clock_skew_seconds), "warn"]);
    out.level = !latestOk || problem || over ? "bad" : cosigned ? "ok" : "warn";
    out.state = !latestOk ? t("notVerified") : problem ? problem
      : `${cosigned ? t("cosigned") : t("notCosigned")}, ${t("lagLabel").toLowerCase()} ${lagText}`;
    return out;
  }

  async function showCheckpoint() {
    const box = $("#checkpoint-body");
    box.replaceChildren();
    try {
      const st = await api("/v1/status");
      const limits = { entries: st.max_lag_entries, seconds: st.max_lag_seconds };
      const own = st.logs.find((l) => l.source === "self");
      state.origin = pinnedOrigin(st.site) || (own && own.origin) || null; // bundles: the pinned origin first
      const cards = el("div", { class: "logs" });
      for (const log of st.logs) {
        const r = await checkLog(log, limits);
        const mark = { ok: "✔", warn: "▲", bad: "✘" }[r.level];
        cards.append(el("article", { class: `card card-${r.level}`, "aria-labelledby": `log-h-${log.authority}` },
          el("h3", { id: `log-h-${log.authority}` }, el("span", { class: `log log-${log.authority}` }, log.authority),
            " ", log.source === "self" ? t("ownLog") : t("counterpartLog")),
          el("p", { class: `state ${r.level}`, "data-testid": `status-${log.authority}`, "data-level": r.level },
            `${mark} ${r.state}`),
          el("dl", {}, ...r.rows.flatMap(([label, text, cls, id]) => [
            el("dt", {}, label), el("dd", { ...(cls ? { class: cls } : {}), ...(id ? { "data-testid": id } : {}) }, text)])),
        ));
      }
      box.append(cards, el("p", { class: "muted" }, `${t("lagLabel")}: ${t("lagHelp")}`));
    } catch (err) {
      box.append(el("p", { class: "bad" }, err.message));
    }
  }

  // --- search ---------------------------------------------------------------------------------------
  function query(after) {
    const q = new URLSearchParams();
    const put = (name, id) => { const v = $(id).value.trim(); if (v) q.set(name, v); };
    put("declaration", "#q-declaration");
    put("message_id", "#q-message");
    put("type", "#q-type");
    for (const [name, id] of [["since", "#q-since"], ["until", "#q-until"]]) {
      const v = $(id).value;
      if (v) q.set(name, new Date(`${v}Z`).toISOString());
    }
    q.set("limit", "100");
    if (after !== undefined && after !== null) q.set("after", String(after));
    return q;
  }

  async function search(ev, after) {
    if (ev) ev.preventDefault();
    const q = query(after);
    try {
      const page = await api(`/v1/entries?${q}`);
      const wanted = $("#q-outcome").value.trim();
      const entries = page.entries.filter((e) => !wanted || e.entry.outcome === wanted);
      renderResults(entries, page.next_after, after !== undefined);
      const decl = $("#q-declaration").value.trim();
      if (decl && after === undefined) await renderTimeline(decl);
      status("");
    } catch (err) {
      status(err.message, false);
    }
  }

  function renderResults(entries, nextAfter, append) {
    const box = $("#results");
    if (!append) box.replaceChildren();
    let table = box.querySelector("table");
    if (!table) {
      table = el("table", {},
        el("thead", {}, el("tr", {}, ...["index", "time", "event", "key", "message", "result"].map(
          (k) => el("th", { scope: "col" }, t(k))))),
        el("tbody"));
      box.append(table);
    }
    if (!entries.length && !append) { box.replaceChildren(el("p", {}, t("noResults"))); return; }
    const body = table.querySelector("tbody");
    for (const e of entries) {
      const row = el("tr", {},
        el("td", {}, el("button", { class: "link", type: "button", "data-index": String(e.index),
          onclick: () => showEntry(e.index) }, String(e.index))),
        el("td", {}, e.entry.time), el("td", {}, e.entry.event_type), el("td", {}, e.entry.business_key || ""),
        el("td", { class: "mono" }, e.entry.message_id || ""), el("td", {}, e.entry.outcome || ""));
      body.append(row);
    }
    box.querySelector(".more")?.remove();
    if (nextAfter !== null && entries.length >= 100) {
      box.append(el("button", { class: "more", type: "button", onclick: () => search(null, nextAfter) }, t("more")));
    }
  }

  // --- one entry and its proof ------------------------------------------------------------------------
  async function verifyIndex(index) {
    const bundle = await api(`/v1/bundle/${index}`);
    return XbVerify.verifyBundle(bundle, state.keys, state.origin);
  }

  function verdict(result) {
    return el("div", { class: `verdict ${result.ok ? "ok" : "bad"}`, role: "status", "data-testid": "verdict" },
      el("strong", {}, result.ok ? `✔ ${t("verified")}` : `✘ ${t("notVerified")}`),
      el("ul", {}, ...result.steps.map((s) => el("li", { class: s.ok ? "ok" : "bad" }, `${s.ok ? "✔" : "✘"} ${s.what}`))),
      result.witnesses.length
        ? el("p", {}, `${t("witness")}: ${result.witnesses.map((w) => w.name).join(", ")}`) : "");
  }

  async function showEntry(index) {
    const box = $("#detail");
    box.replaceChildren(el("h2", {}, `${t("detail")} ${index}`));
    try {
      const e = await api(`/v1/entries/${index}`);
      const rows = Object.entries(e.entry).filter(([, v]) => v !== null && v !== "");
      box.append(el("dl", {}, ...rows.flatMap(([k, v]) => [el("dt", {}, k), el("dd", { class: "mono" }, String(v))])));
      const out = el("div", { "data-testid": "verify-result" });
      box.append(el("button", { type: "button", id: "verify-btn", onclick: async () => {
        out.replaceChildren();
        try { out.append(verdict(await verifyIndex(index))); } catch (err) {
          out.append(el("p", { class: "bad" }, err.message));
        }
      } }, t("verify")), out);
      box.querySelector("#verify-btn").focus();
    } catch (err) {
      box.append(el("p", { class: "bad" }, err.message));
    }
  }

  // --- a declaration across the border (issue 12): both logs' events from /v1/trace/{decl} -------------
  // Each event is checked here against the pinned key of ITS OWN log: the key whose name is the origin
  // ending in "/vn" or "/cn" (never a key or origin the server names), and its entry must say that authority.
  function pinnedOrigin(authority) {
    const suffix = `/${String(authority).toLowerCase()}`;
    const key = state.keys.find((k) => k.type === 0x01 && k.name.endsWith(suffix));
    return key ? key.name : null;
  }

  async function verifyTraceEvent(part, item) {
    const origin = pinnedOrigin(part.authority);
    if (!origin) return { ok: false, steps: [{ ok: false, what: t("noLogKey") }], witnesses: [] };
    const bytes = XbVerify.b64ToBytes(item.entry_b64);
    const entry = JSON.parse(new TextDecoder().decode(bytes));
    const leaf = XbVerify.bytesToHex(await XbVerify.leafHash(bytes));
    const bundle = {
      entry: { index: item.index, entry_b64: item.entry_b64, leaf_hash: leaf, entry },
      inclusion_proof: { leaf_index: item.index, tree_size: item.checkpoint_size, hashes: item.proof || [] },
      checkpoint: (part.checkpoints || {})[String(item.checkpoint_size)] || "",
    };
    const result = await XbVerify.verifyBundle(bundle, state.keys, origin);
    const own = entry.authority === part.authority;
    result.steps.push({ ok: own, what: `entry of the ${part.authority} log` });
    result.ok = result.ok && own;
    return result;
  }

  async function renderTimeline(decl) {
    const box = $("#detail");
    let trace;
    try {
      trace = await api(`/v1/trace/${encodeURIComponent(decl)}`);
    } catch (err) {
      box.replaceChildren(el("p", { class: "bad" }, err.message));
      return;
    }
    const rows = [];
    for (const part of trace.parts || []) {
      for (const item of part.entries || []) {
        let entry = {};
        try { entry = JSON.parse(new TextDecoder().decode(XbVerify.b64ToBytes(item.entry_b64))); } catch { /* red */ }
        rows.push({ part, item, entry });
      }
    }
    rows.sort((a, b) => (a.entry.time < b.entry.time ? -1 : a.entry.time > b.entry.time ? 1
      : a.part.authority < b.part.authority ? -1 : a.part.authority > b.part.authority ? 1 : a.item.index - b.item.index));
    const list = el("ol", { class: "timeline", "data-testid": "timeline" });
    for (const { part, item, entry } of rows) {
      const badge = el("span", { class: "badge" }, "…");
      const li = el("li", { "data-index": String(item.index), "data-log": part.authority },
        el("time", {}, entry.time || ""), " ", el("span", { class: `log log-${part.authority}` }, part.authority),
        " ", el("strong", {}, entry.event_type || "?"), " ", entry.outcome || "", " ", entry.reason_code || "", " ",
        el("span", { class: "muted" }, `#${item.index}`), " ", badge);
      li.xbCheck = () => verifyTraceEvent(part, item);
      list.append(li);
    }
    const all = el("button", { type: "button", id: "verify-all", onclick: async () => {
      for (const li of list.children) {
        const badge = li.querySelector(".badge");
        try {
          const r = await li.xbCheck();
          badge.textContent = r.ok ? `✔ ${t("verified")}` : `✘ ${t("notVerified")}`;
          badge.className = `badge ${r.ok ? "ok" : "bad"}`;
          badge.title = r.steps.filter((s) => !s.ok).map((s) => s.what).join("; ");
        } catch (err) {
          badge.textContent = `✘ ${err.message}`;
          badge.className = "badge bad";
        }
      }
    } }, t("verifyAll"));
    const problem = trace.counterpart && trace.counterpart.problem;
    box.replaceChildren(el("h2", {}, `${t("timeline")} ${decl}`), el("p", { class: "muted" }, t("crossBorder")),
      problem ? el("p", { class: "bad", "data-testid": "counterpart-problem" }, problem) : "",
      await checkpointsOfParts(trace.parts || []), all, list);
  }

  // The newest checkpoint each log's part is proven against: its log signature (the pinned key of that log)
  // and the cosignatures of pinned witness keys, checked here.
  async function checkpointsOfParts(parts) {
    const dl = el("dl", { "data-testid": "trace-checkpoints" });
    for (const part of parts) {
      const sizes = Object.keys(part.checkpoints || {}).map(Number).sort((a, b) => a - b);
      if (!sizes.length) continue;
      const size = sizes[sizes.length - 1];
      let text, ok = false;
      try {
        const checked = await XbVerify.verifyNote(part.checkpoints[String(size)], state.keys);
        const origin = pinnedOrigin(part.authority);
        ok = checked.errors.length === 0 && origin !== null && checked.log.includes(origin) &&
          checked.checkpoint.origin === origin;
        const wit = checked.witnesses.map((w) => `${w.name} @ ${new Date(w.time * 1000).toISOString()}`).join("; ");
        text = `${t("size")} ${checked.checkpoint.size}: ${ok ? t("verified") : t("notVerified")}` +
          ` · ${t("witness")}: ${wit || t("none")}`;
      } catch (err) {
        text = `${t("notVerified")}: ${err.message}`;
      }
      dl.append(el("dt", {}, `${t("checkpoint")} ${part.authority}`),
        el("dd", { class: ok ? "ok" : "bad", "data-testid": `trace-checkpoint-${part.authority}` }, text));
    }
    return dl;
  }

  // --- wiring ---------------------------------------------------------------------------------------
  function init() {
    $("#signin-form").addEventListener("submit", signIn);
    $("#keyfile").addEventListener("change", loadKeyFile);
    $("#search-form").addEventListener("submit", (ev) => search(ev));
    $("#signout").addEventListener("click", signOut);
    $("#refresh").addEventListener("click", showCheckpoint);
    for (const b of document.querySelectorAll("[data-lang]")) {
      b.addEventListener("click", () => {
        state.lang = b.dataset.lang;
        setLabels();
        if (state.token) void showCheckpoint(); // re-render what was drawn in the previous language
      });
    }
    if (!window.isSecureContext || !crypto.subtle) {
      status("WebCrypto needs a secure context: open the console on 127.0.0.1 (or through an SSH tunnel / TLS).", false);
    }
    setLabels();
  }

  document.addEventListener("DOMContentLoaded", init);
})();
