"""Datasets on S3-compatible object storage: a moto server on 127.0.0.1 started by the test."""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import textwrap

import pytest
from click.testing import CliRunner

from apfcompile.cli import main

from . import builders

moto_server = pytest.importorskip("moto.server")
pytest.importorskip("s3fs")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def s3(tmp_path_factory):
    """An S3 endpoint on loopback, a bucket, and the environment credentials for it."""
    port = free_port()
    server = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    endpoint = f"http://127.0.0.1:{port}"
    env = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1"}
    old = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    import s3fs

    s3fs.S3FileSystem.clear_instance_cache()
    fs = s3fs.S3FileSystem(client_kwargs={"endpoint_url": endpoint})
    fs.mkdir("apf-bucket")
    src = builders.btcv(tmp_path_factory.mktemp("s3src") / "btcv", cases=1)
    yield endpoint, src
    server.stop()
    for k, v in old.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v


def run(*args):
    result = CliRunner().invoke(main, [str(a) for a in args])
    return result.exit_code, result.output


def test_compile_verify_and_stream_from_s3(s3, tmp_path):
    endpoint, src = s3
    opt = ["--storage-option", f"endpoint_url={endpoint}"]
    url = "s3://apf-bucket/ct"
    code, out = run("compile", src, url, "-L", "48", "--shard-samples", "8", "-j", "1", *opt)
    assert code == 0, out
    code, out = run("verify", url, *opt)
    assert code == 0 and "OK" in out, out
    code, out = run("inspect", url, *opt)
    assert code == 0 and "30 sample(s)" in out, out
    # the same bytes as a local compile
    code, _ = run("compile", src, tmp_path / "local", "-L", "48", "--shard-samples", "8", "-j", "1")
    import s3fs

    fs = s3fs.S3FileSystem(client_kwargs={"endpoint_url": endpoint})
    local = builders.tree_bytes(tmp_path / "local")
    remote = {
        p.removeprefix("apf-bucket/ct/"): fs.cat_file(p)
        for p in fs.find("apf-bucket/ct")
        if not p.endswith("compile-stats.json")
    }
    assert remote == local
    # stream it back with two DataLoader workers: every sample once
    from torch.utils.data import DataLoader

    from loaders import APFStream

    options = {"client_kwargs": {"endpoint_url": endpoint}}
    for cache_dir in (None, tmp_path / "cache", tmp_path / "cache"):  # uncached, cold, warm
        stream = APFStream(url, length=48, batch_size=4, storage_options=options, cache_dir=cache_dir)
        ids = [i for b in DataLoader(stream, batch_size=None, num_workers=2) for i in b["id"].tolist()]
        assert sorted(ids) == list(range(30))
    assert any((tmp_path / "cache").iterdir())


def test_torchrun_ranks_stream_from_s3(s3, tmp_path):
    endpoint, src = s3
    url = "s3://apf-bucket/ct-ddp"
    assert (
        run(
            "compile",
            src,
            url,
            "-L",
            "48",
            "--shard-samples",
            "8",
            "-j",
            "1",
            "--storage-option",
            f"endpoint_url={endpoint}",
        )[0]
        == 0
    )
    script = tmp_path / "ranks.py"
    script.write_text(
        textwrap.dedent(f"""
        import json
        import torch.distributed as dist
        from torch.utils.data import DataLoader
        from loaders import APFStream
        dist.init_process_group("gloo")
        options = {{"client_kwargs": {{"endpoint_url": {endpoint!r}}}}}
        stream = APFStream({url!r}, length=48, batch_size=4, storage_options=options)
        ids = [i for b in DataLoader(stream, batch_size=None) for i in b["id"].tolist()]
        json.dump(ids, open({str(tmp_path)!r} + f"/rank{{dist.get_rank()}}.json", "w"))
        dist.destroy_process_group()
    """)
    )
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nproc_per_node",
        "2",
        "--master_port",
        "29544",
        str(script),
    ]
    subprocess.run(
        cmd, check=True, capture_output=True, text=True, env=dict(os.environ, OMP_NUM_THREADS="1"), timeout=300
    )
    ranks = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in range(2)]
    assert len(ranks[0]) == len(ranks[1]) == 15 and sorted(ranks[0] + ranks[1]) == list(range(30))


@pytest.mark.parametrize("case", ["wrong-credentials", "missing-bucket", "unreachable-endpoint"])
def test_storage_errors_are_one_line(s3, case, monkeypatch, tmp_path):
    endpoint, src = s3
    import s3fs

    s3fs.S3FileSystem.clear_instance_cache()
    url, opts = "s3://apf-bucket/x", ["--storage-option", f"endpoint_url={endpoint}"]
    if case == "wrong-credentials":  # moto accepts any key, so: no usable credentials at all
        for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
            monkeypatch.delenv(name, raising=False)
        monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent")
        monkeypatch.setenv("AWS_CONFIG_FILE", "/nonexistent")
        monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
        url = "s3://apf-bucket/ct"
    elif case == "missing-bucket":
        url = "s3://no-such-bucket/ds"
    else:
        opts = [
            "--storage-option",
            f"endpoint_url=http://127.0.0.1:{free_port()}",
            "--storage-option",
            "config_kwargs={}",
        ][:2]
    commands = (
        ["inspect", url],
        ["compile", src, url + "-new", "-L", "48", "-j", "1"],
        ["compile", url, tmp_path / "from-s3", "-L", "48", "-j", "1"],
    )  # INPUT on S3
    cause = {
        "wrong-credentials": "NoCredentialsError",
        "unreachable-endpoint": "Could not connect",
        "missing-bucket": "no apfcompile dataset|does not exist|no such file",
    }[case]
    for command in commands:
        code, out = run(*command, *opts)
        assert code != 0 and "Traceback" not in out
        errors = [line for line in out.splitlines() if line.startswith("apfcompile: error:")]
        assert len(errors) == 1 and url.split("/")[2] in errors[0], out
        assert re.search(cause, errors[0]), errors[0]  # the real cause, not a guess


def test_compile_from_s3_inputs_with_worker_processes(s3, tmp_path):
    """INPUT on S3, read by two spawned workers: the same bytes as compiling the local copy."""
    endpoint, src = s3
    import s3fs

    fs = s3fs.S3FileSystem(client_kwargs={"endpoint_url": endpoint})
    fs.put(str(src), "apf-bucket/inputs/btcv", recursive=True)
    opt = ["--storage-option", f"endpoint_url={endpoint}"]
    code, out = run(
        "compile",
        "s3://apf-bucket/inputs/btcv",
        tmp_path / "remote",
        "-L",
        "48",
        "--shard-samples",
        "8",
        "-j",
        "2",
        *opt,
    )
    assert code == 0, out
    code, out = run("compile", src, tmp_path / "local", "-L", "48", "--shard-samples", "8", "-j", "1")
    assert code == 0, out
    assert builders.tree_bytes(tmp_path / "remote") == builders.tree_bytes(tmp_path / "local")
    code, out = run("compile", "s3://apf-bucket/inputs/nothing-here", tmp_path / "x", "-j", "1", *opt)
    errors = [line for line in out.splitlines() if line.startswith("apfcompile: error:")]
    assert code != 0 and len(errors) == 1 and "nothing-here" in errors[0], out


def test_dask_cluster_from_s3_inputs_to_s3(s3, tmp_path):
    """The multi-node recipe in small: S3 in, a 2-worker Dask cluster, S3 out == a local compile."""
    pytest.importorskip("distributed")
    endpoint, src = s3
    import s3fs

    fs = s3fs.S3FileSystem(client_kwargs={"endpoint_url": endpoint})
    if not fs.exists("apf-bucket/inputs-dask/btcv"):
        fs.put(str(src), "apf-bucket/inputs-dask/btcv", recursive=True)
    opt = ["--storage-option", f"endpoint_url={endpoint}"]
    code, out = run(
        "compile",
        "s3://apf-bucket/inputs-dask/btcv",
        "s3://apf-bucket/ct-dask",
        "-L",
        "48",
        "--shard-samples",
        "8",
        "--scheduler",
        "local:2",
        *opt,
    )
    assert code == 0, out
    code, out = run("compile", src, tmp_path / "local", "-L", "48", "--shard-samples", "8", "-j", "1")
    assert code == 0, out
    remote = {
        p.removeprefix("apf-bucket/ct-dask/"): fs.cat_file(p)
        for p in fs.find("apf-bucket/ct-dask")
        if not p.endswith("compile-stats.json")
    }
    assert remote == builders.tree_bytes(tmp_path / "local")


def test_inputs_take_their_own_storage_options(s3, tmp_path):
    """--input-storage-option reaches INPUT (and preview --input) without any --storage-option;
    the config falls back to --storage-option for inputs only when no input options are given."""
    endpoint, src = s3
    import s3fs

    fs = s3fs.S3FileSystem(client_kwargs={"endpoint_url": endpoint})
    if not fs.exists("apf-bucket/inputs-own/btcv"):
        fs.put(str(src), "apf-bucket/inputs-own/btcv", recursive=True)
    url = "s3://apf-bucket/inputs-own/btcv"
    code, out = run(
        "compile", url, tmp_path / "ds", "-L", "48", "-j", "1", "--input-storage-option", f"endpoint_url={endpoint}"
    )
    assert code == 0, out
    code, out = run("compile", src, tmp_path / "local", "-L", "48", "-j", "1")
    assert builders.tree_bytes(tmp_path / "ds") == builders.tree_bytes(tmp_path / "local")
    code, out = run(
        "preview",
        tmp_path / "ds",
        "--sample",
        "img0001/z003",
        "-o",
        tmp_path / "p.png",
        "--input",
        url,
        "--input-storage-option",
        f"endpoint_url={endpoint}",
    )
    assert code == 0 and (tmp_path / "p.png").exists(), out
    from apfcompile import CompileConfig

    both = CompileConfig.from_options(input=url, output="o", storage_options={"a": 1})
    assert both.input.storage_options == {"a": 1} and both.output.storage_options == {"a": 1}
    apart = CompileConfig.from_options(input=url, output="o", storage_options={"a": 1}, input_storage_options={})
    assert apart.input.storage_options == {} and apart.output.storage_options == {"a": 1}


def test_a_flaky_network_loses_and_repeats_nothing(s3, tmp_path):
    """2 ranks stream a dataset from the S3 server through a proxy that fails 5 % of GETs (503
    SlowDown, or the body cut off) and slows 5 %: failed requests are retried with backoff, and
    every sample arrives exactly once (``benchmarks/soak.py`` runs a larger one)."""
    import s3fs

    from formats import open_dataset

    from . import soak
    from .flaky_proxy import FlakyProxy

    endpoint, _ = s3
    s3fs.S3FileSystem.clear_instance_cache()  # none made without credentials by an earlier test
    ds = soak.make_dataset(tmp_path / "ds", 300, shard_samples=50)
    s3fs.S3FileSystem(client_kwargs={"endpoint_url": endpoint}).put(str(ds), "apf-bucket/flaky", recursive=True)
    keys = open_dataset(ds).samples["key"].to_pylist()
    with FlakyProxy(endpoint, fail=0.05, slow=0.05, seed=1) as proxy:
        reports = soak.run("s3://apf-bucket/flaky", 2, 1, 1, tmp_path, endpoint=proxy.url)
    seen = [k for rank in reports for k in rank[0]["keys"]]
    assert sorted(seen) == sorted(keys)
    assert proxy.stats["failed"] + proxy.stats["cut"] > 0, proxy.stats  # faults were really injected


def test_credentials_never_leave_the_process(s3, tmp_path, monkeypatch):
    """Fake keys given as storage options and in the environment appear in no output, no error,
    no manifest, no shard record, no compile-stats.json."""
    import s3fs

    endpoint, src = s3
    key, secret = "AKIAFAKEKEY0123456789", "fakeSecret+0123456789abcdefghijklmnopqrstuv"
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", key)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", secret)
    s3fs.S3FileSystem.clear_instance_cache()
    opts = ["--storage-option", f"endpoint_url={endpoint}", "--storage-option", f"key={key}"]
    opts += ["--storage-option", f"secret={secret}"]
    url = "s3://apf-bucket/creds"
    outputs = [run("compile", src, url, "-L", "48", "-j", "1", *opts)]
    assert outputs[0][0] == 0, outputs[0][1]
    outputs += [
        run("inspect", url, *opts),
        run("verify", url, *opts),
        run("dump", url, "--shard", "0", *opts),
        run("ls", url, *opts),
        run("compile", src, url, "-L", "48", *opts),  # exists
        run("compile", src, "s3://no-such-bucket/x", *opts),
        run("inspect", "s3://apf-bucket/nothing-here", *opts),
        run("compile", url, tmp_path / "from-s3", "-L", "48", *opts),  # not an input layout
        run("inspect", url, "--storage-option", f"endpoint_url=http://127.0.0.1:{free_port()}", *opts[2:]),
    ]
    fs = s3fs.S3FileSystem(client_kwargs={"endpoint_url": endpoint})
    stored = {path: fs.cat_file(path) for path in fs.find("apf-bucket/creds")}
    assert any(p.endswith("compile-stats.json") for p in stored) and any(p.endswith("apf.json") for p in stored)
    for _, out in outputs:
        assert key not in out and secret not in out, out
    for path, data in stored.items():
        assert key.encode() not in data and secret.encode() not in data, path
