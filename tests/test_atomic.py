"""Files written whole or not at all, never replacing one without overwrite."""
import os

import pytest

from sr.atomic import write_file_atomic
from sr.errors import UserError


def write(path, data: bytes):
    return write_file_atomic(path, lambda f: f.write(data))


def test_never_replaces_and_leaves_no_temporary(tmp_path):
    target = tmp_path / "out.png"
    write(target, b"first")
    with pytest.raises(UserError, match="already exists"):
        write(target, b"second")
    assert target.read_bytes() == b"first"
    assert os.listdir(tmp_path) == ["out.png"]


def test_without_hard_links_a_new_file_is_still_never_replaced(tmp_path, monkeypatch):
    def no_links(*_):
        raise PermissionError(1, "Operation not permitted")   # what FAT answers
    monkeypatch.setattr(os, "link", no_links)
    target = tmp_path / "out.png"
    write(target, b"first")
    assert target.read_bytes() == b"first"
    with pytest.raises(UserError, match="already exists"):
        write(target, b"second")
    assert target.read_bytes() == b"first"
    assert os.listdir(tmp_path) == ["out.png"]


def test_failed_write_leaves_nothing(tmp_path):
    def broken(f):
        f.write(b"half")
        raise OSError("disk full")
    with pytest.raises(OSError):
        write_file_atomic(tmp_path / "x.png", broken)
    assert os.listdir(tmp_path) == []
