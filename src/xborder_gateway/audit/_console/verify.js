// xborder-gateway audit verifier for the browser: RFC 9162 inclusion proofs and C2SP signed notes
// (tlog-checkpoint, signed-note Ed25519 key type 0x01, tlog-cosignature cosignature/v1 key type 0x04),
// checked with WebCrypto (SHA-256, Ed25519) against verifier keys the auditor pinned -- never keys the
// server hands out. Written from docs/audit.md and the C2SP specs; no dependency, no network access.
// Used by the console (as /console/verify.js) and inlined into the standalone verifier page.
"use strict";

const XbVerify = (() => {
  const te = new TextEncoder();

  function hexToBytes(hex) {
    if (typeof hex !== "string" || hex.length % 2 !== 0 || !/^[0-9a-f]*$/.test(hex)) {
      throw new Error("not lower-case hex");
    }
    const out = new Uint8Array(hex.length / 2);
    for (let i = 0; i < out.length; i++) out[i] = parseInt(hex.substr(i * 2, 2), 16);
    return out;
  }

  function bytesToHex(bytes) {
    return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
  }

  function b64ToBytes(text) {
    // standard, padded base64 only (non-canonical encodings are refused, as by the server's NOTE-3)
    if (typeof text !== "string" || !/^[A-Za-z0-9+/]*={0,2}$/.test(text) || text.length % 4 !== 0) {
      throw new Error("not standard padded base64");
    }
    const bin = atob(text);
    const out = new Uint8Array(bin.length);
    for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
    if (btoa(bin) !== text) throw new Error("non-canonical base64");
    return out;
  }

  function concat(...parts) {
    const size = parts.reduce((n, p) => n + p.length, 0);
    const out = new Uint8Array(size);
    let at = 0;
    for (const p of parts) { out.set(p, at); at += p.length; }
    return out;
  }

  function equal(a, b) {
    if (a.length !== b.length) return false;
    let diff = 0;
    for (let i = 0; i < a.length; i++) diff |= a[i] ^ b[i];
    return diff === 0;
  }

  async function sha256(bytes) {
    return new Uint8Array(await crypto.subtle.digest("SHA-256", bytes));
  }

  // RFC 9162 §2.1.1: leaf hash = SHA-256(0x00 || entry), node hash = SHA-256(0x01 || left || right)
  const leafHash = (entry) => sha256(concat(Uint8Array.of(0), entry));
  const nodeHash = (l, r) => sha256(concat(Uint8Array.of(1), l, r));

  // RFC 9162 §2.1.3.2: the root an inclusion proof leads to (null if the proof is malformed)
  async function rootFromInclusion(index, size, leaf, path) {
    if (!Number.isSafeInteger(index) || !Number.isSafeInteger(size) || index < 0 || index >= size) return null;
    let fn = index, sn = size - 1, r = leaf;
    for (const p of path) {
      if (sn === 0) return null;
      if (fn % 2 === 1 || fn === sn) {
        r = await nodeHash(p, r);
        if (fn % 2 === 0) {
          while (fn % 2 === 0 && fn !== 0) { fn = Math.floor(fn / 2); sn = Math.floor(sn / 2); }
        }
      } else {
        r = await nodeHash(r, p);
      }
      fn = Math.floor(fn / 2); sn = Math.floor(sn / 2);
    }
    return sn === 0 ? r : null;
  }

  // A verifier key "<name>+<8 hex key hash>+<base64(type || 32-byte Ed25519 key)>" (signed-note format).
  async function parseVerifierKey(text) {
    // name and hash hold no "+"; the base64 key may (split at the first two only)
    const m = /^([^+\s]+)\+([0-9a-f]{8})\+(\S+)$/.exec(String(text).trim());
    if (!m) throw new Error("a verifier key is <name>+<hash>+<key>");
    const [, name, hashHex, keyB64] = m;
    const blob = b64ToBytes(keyB64);
    if (blob.length !== 33 || (blob[0] !== 0x01 && blob[0] !== 0x04)) {
      throw new Error("only Ed25519 (0x01) and cosignature/v1 (0x04) keys are supported");
    }
    const hash = (await sha256(concat(te.encode(name + "\n"), blob))).slice(0, 4);
    if (bytesToHex(hash) !== hashHex) throw new Error("the key hash does not match the key's name and bytes");
    const key = await crypto.subtle.importKey("raw", blob.slice(1), { name: "Ed25519" }, false, ["verify"]);
    return { name, type: blob[0], hash, key, text: String(text).trim() };
  }

  // Split a signed note into its text (with the final newline) and its signature lines.
  function splitNote(note) {
    const at = note.indexOf("\n\n");
    if (at < 0 || !note.endsWith("\n")) throw new Error("not a signed note");
    const text = note.slice(0, at + 1);
    const sigs = note.slice(at + 2).split("\n").slice(0, -1).map((line) => {
      const m = /^\u2014 (\S+) (\S+)$/.exec(line);
      if (!m) throw new Error("malformed signature line");
      return { name: m[1], blob: b64ToBytes(m[2]) };
    });
    return { text, sigs };
  }

  function parseCheckpoint(text) {
    const lines = text.split("\n");
    if (lines.length < 4 || !/^(0|[1-9][0-9]{0,18})$/.test(lines[1])) throw new Error("not a checkpoint");
    const root = b64ToBytes(lines[2]);
    if (root.length !== 32) throw new Error("a checkpoint root has 32 bytes");
    const size = Number(lines[1]);
    if (!Number.isSafeInteger(size)) throw new Error("tree size beyond what this page can check");
    return { origin: lines[0], size, root };
  }

  function be64(value) {
    const out = new Uint8Array(8);
    let v = BigInt(value);
    for (let i = 7; i >= 0; i--) { out[i] = Number(v & 0xffn); v >>= 8n; }
    return out;
  }

  // Check every signature of the pinned keys on a checkpoint note.
  // Returns {checkpoint, log: [names verified], witnesses: [{name, time}], errors: [...]}.
  async function verifyNote(note, pinned) {
    const { text, sigs } = splitNote(note);
    const checkpoint = parseCheckpoint(text);
    const out = { checkpoint, log: [], witnesses: [], errors: [] };
    for (const sig of sigs) {
      const key = pinned.find((k) => k.name === sig.name && equal(k.hash, sig.blob.slice(0, 4)));
      if (!key) continue; // unknown keys are ignored (a note may carry others' cosignatures)
      if (key.type === 0x01) {
        const ok = sig.blob.length === 68 &&
          await crypto.subtle.verify({ name: "Ed25519" }, key.key, sig.blob.slice(4), te.encode(text));
        (ok ? out.log : out.errors).push(ok ? key.name : `log signature by ${key.name} does not verify`);
      } else {
        // C2SP tlog-cosignature: blob = key hash || 8-byte big-endian timestamp || Ed25519 signature over
        // "cosignature/v1\ntime <timestamp>\n" followed by the checkpoint text
        if (sig.blob.length !== 76) { out.errors.push(`cosignature by ${key.name} is malformed`); continue; }
        const ts = sig.blob.slice(4, 12);
        let t = 0n;
        for (const b of ts) t = (t << 8n) | BigInt(b);
        const msg = concat(te.encode(`cosignature/v1\ntime ${t}\n`), te.encode(text));
        const ok = equal(be64(t), ts) &&
          await crypto.subtle.verify({ name: "Ed25519" }, key.key, sig.blob.slice(12), msg);
        if (ok) out.witnesses.push({ name: key.name, time: Number(t) });
        else out.errors.push(`cosignature by ${key.name} does not verify`);
      }
    }
    return out;
  }

  // Verify an offline proof bundle (docs/audit.md §6) against pinned keys. Never throws: returns
  // {ok, steps: [{ok, what}], checkpoint, witnesses}.
  async function verifyBundle(bundle, pinnedKeys, expectedOrigin) {
    const steps = [];
    const step = (ok, what) => { steps.push({ ok, what }); return ok; };
    try {
      const entry = b64ToBytes(bundle.entry.entry_b64);
      const leaf = await leafHash(entry);
      step(bytesToHex(leaf) === bundle.entry.leaf_hash, "leaf hash = SHA-256(0x00 ‖ entry bytes)");
      step(bundle.entry.entry && bundle.entry.index === bundle.inclusion_proof.leaf_index,
        "the proof is for this entry's index");
      const proof = bundle.inclusion_proof;
      const path = proof.hashes.map(hexToBytes);
      const root = await rootFromInclusion(proof.leaf_index, proof.tree_size, leaf, path);
      step(root !== null, "inclusion proof is well formed (RFC 9162 §2.1.3.2)");
      const checked = await verifyNote(bundle.checkpoint, pinnedKeys);
      for (const e of checked.errors) step(false, e);
      step(checked.log.length > 0, "checkpoint signed by a pinned log key");
      if (expectedOrigin) step(checked.checkpoint.origin === expectedOrigin, `checkpoint origin is ${expectedOrigin}`);
      step(checked.checkpoint.size === proof.tree_size, "checkpoint size = proof's tree size");
      step(root !== null && equal(root, checked.checkpoint.root), "proof leads to the checkpoint's root");
      const ok = steps.every((s) => s.ok);
      return { ok, steps, checkpoint: checked.checkpoint, witnesses: checked.witnesses };
    } catch (err) {
      step(false, `unreadable: ${err.message}`);
      return { ok: false, steps, checkpoint: null, witnesses: [] };
    }
  }

  return {
    hexToBytes, bytesToHex, b64ToBytes, sha256, leafHash, nodeHash, rootFromInclusion,
    parseVerifierKey, splitNote, parseCheckpoint, verifyNote, verifyBundle,
  };
})();

if (typeof globalThis !== "undefined") globalThis.XbVerify = XbVerify;
