"""Each voice actor process writes how many calls it carries to a file named by its pid
(actors/voice_session.py `CALLS_DIR`, read by bench/voice.py). Ray kills a retired actor without
a word, so a new actor removes the files of processes that have ended as it warms."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from actors import voice_session


@pytest.mark.skipif(not os.path.exists("/proc/self"), reason="needs /proc to tell live pids")
def test_a_new_actor_removes_the_files_of_processes_that_ended(tmp_path, monkeypatch):
    monkeypatch.setattr(voice_session, "CALLS_DIR", tmp_path)
    ended = subprocess.Popen([sys.executable, "-c", "pass"])
    ended.wait()
    assert not os.path.exists(f"/proc/{ended.pid}")
    for name, text in ((str(ended.pid), "2"), (str(os.getpid()), "1"), ("README", "kept")):
        (tmp_path / name).write_text(text)

    assert voice_session.prune_calls_dir() == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([str(os.getpid()), "README"])
    assert (tmp_path / str(os.getpid())).read_text() == "1"  # a live process's count stays


def test_a_missing_folder_is_nothing_to_prune(tmp_path, monkeypatch):
    monkeypatch.setattr(voice_session, "CALLS_DIR", tmp_path / "never-made")
    assert voice_session.prune_calls_dir() == 0
