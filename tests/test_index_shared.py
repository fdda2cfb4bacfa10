"""One index folder read by several processes on several machines (NFS or the like): each
records the version it serves in ``readers/``, and cleanup keeps what a live reader names."""

from __future__ import annotations

import json
import logging
import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from index.build import reindex
from index.embedders.hashing import HashingEmbedder
from index.store import READER_TTL, IndexDir, instance_name

ROOT = Path(__file__).resolve().parent.parent


def build_versions(corpus: Path, index: IndexDir, count: int) -> list[str]:
    """``count`` re-indexes, each with one article changed: their version names."""
    embedder = HashingEmbedder(64)
    names = []
    for i in range(count):
        (corpus / "tech" / "chip.txt").write_text(f"Chip news {i}\n\nA new body, number {i}.\n")
        names.append(str(reindex([corpus], index, embedder).version))
    return names


def versions_on_disk(index: IndexDir) -> list[str]:
    return sorted(p.name for p in index.versions.iterdir())


def age(path: Path, seconds: float) -> None:
    """Make a file look written ``seconds`` ago (its mtime counts as a heartbeat too)."""
    then = time.time() - seconds
    os.utime(path, (then, then))


def fake_versions(index: IndexDir, *names: str) -> None:
    """Empty version folders (cleanup only looks at names) and ``current`` on the last."""
    for name in names:
        (index.versions / name).mkdir(parents=True)
    index.swap(index.versions / names[-1])


def test_a_version_a_live_reader_serves_outlives_keep_and_still_loads(
    small_corpus: Path, tmp_path: Path
):
    index = IndexDir(tmp_path / "idx")
    [first] = build_versions(small_corpus, index, 1)
    assert index.note_reader("bot-a", first, every=30)
    later = build_versions(small_corpus, index, 4)  # each re-index collects garbage (keep 3)
    assert versions_on_disk(index) == sorted([first, *later[1:]])  # later[0] went, first stayed
    assert index.load(version_dir=index.versions / first).version == first  # intact
    index.drop_reader("bot-a")  # the bot moved on (or stopped): the next cleanup takes it
    assert index.collect_garbage() == [first]
    assert versions_on_disk(index) == later[1:]


def test_a_stale_reader_pins_nothing_and_its_record_goes(tmp_path: Path):
    index = IndexDir(tmp_path / "idx")
    fake_versions(index, "v000001", "v000002", "v000003")
    index.note_reader("dead", "v000001", now=time.time() - READER_TTL - 5)
    age(index.readers_dir / "dead.json", READER_TTL + 5)
    assert [r.instance for r in index.readers()] == ["dead"]
    assert index.collect_garbage(keep=1) == ["v000001", "v000002"]
    assert versions_on_disk(index) == ["v000003"]
    assert index.readers() == [] and list(index.readers_dir.iterdir()) == []


def test_a_reader_with_a_long_heartbeat_stays_fresh_for_three_of_them(tmp_path: Path):
    index = IndexDir(tmp_path / "idx")
    fake_versions(index, "v000001", "v000002")
    # Silent for 20 minutes, past the TTL, but it said it checks in hourly: alive.
    index.note_reader("slow", "v000001", every=3600, now=time.time() - 1200)
    age(index.readers_dir / "slow.json", 1200)
    assert index.collect_garbage(keep=0) == []
    # Three intervals later it is taken for dead.
    assert index.collect_garbage(keep=0, now=time.time() + 3 * 3600) == ["v000001"]


def test_garbage_in_readers_does_not_break_cleanup(tmp_path: Path, caplog):
    index = IndexDir(tmp_path / "idx")
    fake_versions(index, "v000001", "v000002", "v000003", "v000004")
    index.note_reader("alive", "v000002")
    readers = index.readers_dir
    torn = readers / "torn.json"
    torn.write_text('{"version": "v0000')  # cut short (written in place by something else)
    wrong = readers / "wrong.json"
    wrong.write_text(json.dumps({"version": 3, "seen": "yesterday"}))
    forever = readers / "forever.json"
    forever.write_text('{"version": "v000001", "seen": Infinity}')  # must not pin forever
    binary = readers / "binary.json"
    binary.write_bytes(b"\xff\xfe\x00garbage")
    (readers / "a-folder.json").mkdir()
    leftover = readers / ".killed.json.tmp-123-abcd"  # a writer killed before its rename
    leftover.write_text("{")
    with caplog.at_level(logging.WARNING, logger="index.store"):
        assert index.collect_garbage(keep=1) == ["v000001", "v000003"]
    assert versions_on_disk(index) == ["v000002", "v000004"]
    assert "not a reader record" in caplog.text
    assert torn.exists() and leftover.exists()  # fresh: left alone for now
    for path in (torn, wrong, forever, binary, leftover):
        age(path, READER_TTL + 1)
    index.collect_garbage(keep=1)
    assert sorted(p.name for p in readers.iterdir()) == ["a-folder.json", "alive.json"]
    assert [r.version for r in index.readers()] == ["v000002"]


def test_two_machines_on_one_folder_see_each_others_readers(tmp_path: Path):
    folder = tmp_path / "shared"
    folder.mkdir()
    mount_a, mount_b = tmp_path / "mnt-a", tmp_path / "mnt-b"  # the folder mounted twice
    mount_a.symlink_to(folder)
    mount_b.symlink_to(folder)
    machine_a, machine_b = IndexDir(mount_a), IndexDir(mount_b)
    fake_versions(machine_a, "v000001", "v000002", "v000003", "v000004")
    # Machine B's bot is another process: it writes its record on its own.
    script = (
        "import sys; from index.store import IndexDir; "
        "sys.exit(0 if IndexDir(sys.argv[1]).note_reader('bot-b', 'v000001', every=30) else 1)"
    )
    subprocess.run([sys.executable, "-c", script, str(mount_b)], cwd=ROOT, check=True)
    machine_a.note_reader("bot-a", "v000002")
    seen_by_a = {r.instance: r for r in machine_a.readers()}
    assert {r.instance: r.version for r in machine_b.readers()} == {
        "bot-a": "v000002",
        "bot-b": "v000001",
    }
    assert seen_by_a["bot-b"].pid != os.getpid() and seen_by_a["bot-b"].host == socket.gethostname()
    # A re-index on machine A keeps what machine B serves, and the other way round.
    assert machine_a.collect_garbage(keep=0) == ["v000003"]
    assert versions_on_disk(machine_b) == ["v000001", "v000002", "v000004"]
    # B's record is B's: A's process does not drop it under B's name.
    machine_a.drop_reader("bot-b")
    assert [r.instance for r in machine_b.readers()] == ["bot-a", "bot-b"]
    machine_a.drop_reader("bot-a")
    assert machine_b.collect_garbage(keep=0) == ["v000002"]


def test_the_current_version_is_never_removed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    index = IndexDir(tmp_path / "idx")
    fake_versions(index, "v000001", "v000002", "v000003")
    index.swap(index.versions / "v000001")  # rolled back to the oldest
    index.note_reader("elsewhere", "v000002", now=time.time() - 2 * READER_TTL)
    age(index.readers_dir / "elsewhere.json", 2 * READER_TTL)
    monkeypatch.chdir(tmp_path)
    relative = IndexDir(Path("idx"))  # as a relative path: still knows which one is current
    assert relative.collect_garbage(keep=0) == ["v000002", "v000003"]
    assert versions_on_disk(index) == ["v000001"]
    assert index.current() == (index.versions / "v000001").resolve()


def test_records_are_replaced_whole_while_others_read_them(tmp_path: Path):
    index = IndexDir(tmp_path / "idx")
    fake_versions(index, "v000001")
    index.note_reader("busy", "v000001")
    stop = threading.Event()

    def heartbeat() -> None:
        while not stop.is_set():
            index.note_reader("busy", "v000001", every=1)

    writer = threading.Thread(target=heartbeat)
    writer.start()
    try:
        reads = [index.readers() for _ in range(300)]
    finally:
        stop.set()
        writer.join()
    assert all([r.instance for r in found] == ["busy"] for found in reads)
    assert [p.name for p in index.readers_dir.iterdir()] == ["busy.json"]  # no temporaries


def test_a_folder_that_cannot_be_written_serves_anyway(tmp_path: Path, caplog):
    index = IndexDir(tmp_path / "idx")
    fake_versions(index, "v000001", "v000002")
    index.readers_dir.write_text("not a folder")  # mkdir fails, even for root
    with caplog.at_level(logging.WARNING, logger="index.store"):
        assert not index.note_reader("ro", "v000001")
        assert not index.note_reader("ro", "v000001")
    assert caplog.text.count("Cannot record") == 1  # said once, not at every heartbeat
    index.drop_reader("ro")  # nothing to drop: no error
    assert index.readers() == []
    assert index.collect_garbage(keep=0) == ["v000001"]


def test_instance_names():
    assert instance_name("  bot-1 ") == "bot-1"
    assert instance_name("") == f"{socket.gethostname()}-{os.getpid()}"


def test_an_odd_instance_name_is_a_plain_file_name(tmp_path: Path):
    index = IndexDir(tmp_path / "idx")
    fake_versions(index, "v000001")
    assert index.note_reader("../../etc/bot 1", "v000001")
    [record] = list(index.readers_dir.iterdir())
    assert record.name == "_.._etc_bot_1.json"
    assert [r.instance for r in index.readers()] == ["../../etc/bot 1"]
    index.drop_reader("../../etc/bot 1")
    assert list(index.readers_dir.iterdir()) == []


async def test_a_bot_records_the_version_it_serves_and_forgets_it_at_close(
    tmp_path: Path, small_corpus: Path
):
    from bot.services import BotServices
    from newsdesk.settings import BotSettings

    settings = BotSettings(  # type: ignore[call-arg]
        _env_file=None,
        telegram_token="1:a",
        data_dir=tmp_path / "data",
        corpus_dirs=[small_corpus],
        instance_name="bot-a",
    )
    services = BotServices.open(settings, HashingEmbedder(64))
    index = IndexDir(settings.index_path)
    try:
        first = services.engine.index.version
        assert [(r.instance, r.version) for r in index.readers()] == [("bot-a", first)]
        (small_corpus / "late-news.txt").write_text(
            "Title: Late news\n\nA new paragraph about something else entirely.\n"
        )
        await services.reindex()  # swaps at once: the record follows the new version
        assert services.engine.index.version != first
        assert [r.version for r in index.readers()] == [services.engine.index.version]
    finally:
        services.close()
    assert index.readers() == []
