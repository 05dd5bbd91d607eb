"""Launcher checks that need no broker: Java detection, Maven missing, configuration."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from xborder_gateway.config import load_settings
from xborder_gateway.errors import ConfigError
from xborder_gateway.kafka_local import LocalKafka, java_major_version


def fake_java(tmp_path: Path, version_line: str) -> str:
    exe = tmp_path / "java"
    exe.write_text(f"#!/bin/sh\necho '{version_line}' >&2\n")
    exe.chmod(exe.stat().st_mode | stat.S_IEXEC)
    return str(exe)


@pytest.mark.parametrize(
    ("line", "major"),
    [
        ('openjdk version "17.0.15" 2025-04-15', 17),
        ('openjdk version "21" 2023-09-19', 21),
        ('java version "1.8.0_392"', 8),
        ('openjdk version "11.0.2" 2019-01-15', 11),
    ],
)
def test_java_major_version(tmp_path: Path, line: str, major: int) -> None:
    assert java_major_version(fake_java(tmp_path, line)) == major


def test_old_java_is_refused_with_what_to_install(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    bin_dir = tmp_path / "jdk" / "bin"
    bin_dir.mkdir(parents=True)
    fake_java(bin_dir, 'openjdk version "11.0.2" 2019-01-15')
    monkeypatch.setenv("JAVA_HOME", str(tmp_path / "jdk"))
    with pytest.raises(ConfigError) as info:
        LocalKafka(load_settings(home=tmp_path / "home")).start()
    assert info.value.code == "JAVA_TOO_OLD"
    assert "17" in (info.value.hint or "")


def test_missing_maven_says_what_to_install(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))  # no mvn on this PATH
    settings = load_settings(home=tmp_path / "home", kafka_cache=tmp_path / "empty-cache")
    with pytest.raises(ConfigError) as info:
        LocalKafka(settings).fetch()
    assert info.value.code == "MAVEN_MISSING"
    assert "apt-get install maven" in (info.value.hint or "")


def test_settings_precedence_flags_env_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "config.toml").write_text('topic_partitions = 6\n[kafka]\nport = 9300\nheap = "1g"\n')
    monkeypatch.delenv("XBG_KAFKA_PORT", raising=False)
    assert load_settings(home=tmp_path).kafka_port == 9300  # file
    assert load_settings(home=tmp_path).kafka_heap == "1g"
    assert load_settings(home=tmp_path).topic_partitions == 6
    monkeypatch.setenv("XBG_KAFKA_PORT", "9400")
    assert load_settings(home=tmp_path).kafka_port == 9400  # env beats file
    assert load_settings(home=tmp_path, kafka_port=9500).kafka_port == 9500  # flag beats env


def test_invalid_setting_names_the_field(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XBG_KAFKA_PORT", "not-a-port")
    with pytest.raises(ConfigError) as info:
        load_settings(home=tmp_path)
    assert "kafka_port" in info.value.message


def test_explicit_missing_config_file_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        load_settings(home=tmp_path, config_file=tmp_path / "nope.toml")
    assert info.value.code == "CONFIG_FILE"


def test_home_from_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XBG_HOME", str(tmp_path / "h"))
    settings = load_settings()
    assert settings.home == tmp_path / "h"
    assert settings.kafka_dir == tmp_path / "h" / "kafka"
    assert os.fspath(settings.audit_db("VN")).startswith(os.fspath(tmp_path / "h"))


def test_unknown_key_in_config_file_is_an_error(tmp_path: Path) -> None:
    (tmp_path / "config.toml").write_text("[kafka]\nprot = 9300\n")
    with pytest.raises(ConfigError) as info:
        load_settings(home=tmp_path)
    assert "kafka_prot" in info.value.message


def test_jit_quick_by_default_and_full_on_request(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """kafka_jit: the broker and MirrorMaker run with the client compiler only unless asked (docs/kafka-local.md)."""
    from xborder_gateway.kafka_local._launcher import jit_options

    monkeypatch.delenv("XBG_KAFKA_JIT", raising=False)
    assert jit_options(load_settings(home=tmp_path)) == ("-XX:TieredStopAtLevel=1",)
    assert jit_options(load_settings(home=tmp_path, kafka_jit="full")) == ()
    monkeypatch.setenv("XBG_KAFKA_JIT", "full")
    assert jit_options(load_settings(home=tmp_path)) == ()
    monkeypatch.setenv("XBG_KAFKA_JIT", "fast")
    with pytest.raises(ConfigError):
        load_settings(home=tmp_path)
