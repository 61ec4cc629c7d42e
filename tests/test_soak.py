"""Days of reading, compressed (``benchmarks/soak.py`` runs 10,000 samples): ranks x persistent
workers for three epochs, every sample exactly once per epoch, memory and descriptors flat."""

from __future__ import annotations

import pytest

from formats import open_dataset
from formats.storage import retried, transient

from . import soak


def test_two_ranks_by_two_workers_for_three_epochs(tmp_path):
    ds = soak.make_dataset(tmp_path / "ds", 1000, shard_samples=100)
    keys = open_dataset(ds).samples["key"].to_pylist()
    reports = soak.run(str(ds), ranks=2, workers=2, epochs=3, folder=tmp_path)
    figures = soak.check(reports, keys)  # exactly once, distinct orders, memory and fds bounded
    assert len(figures["rss_mib"]) == 3


def test_requests_are_retried_only_when_they_may_succeed():
    calls = []

    def flaky():
        calls.append(1)
        if len(calls) < 3:
            raise ConnectionResetError("reset by peer")
        return b"ok"

    assert retried(flaky, delays=(0.001,) * 5) == b"ok" and len(calls) == 3
    assert not transient(FileNotFoundError("s3://b/k")) and not transient(PermissionError("denied"))
    missing = []

    def gone():
        missing.append(1)
        raise FileNotFoundError("s3://b/k")

    with pytest.raises(FileNotFoundError):
        retried(gone, delays=(0.001,) * 5)
    assert len(missing) == 1  # not retried


def test_a_server_that_cannot_be_reached_is_not_waited_for():
    class EndpointConnectionError(Exception):  # botocore's, by name
        pass

    assert not transient(EndpointConnectionError("Could not connect to the endpoint URL"))
    assert not transient(ConnectionRefusedError(111, "refused"))
    assert transient(ConnectionResetError(104, "reset")) and transient(TimeoutError("timed out"))
