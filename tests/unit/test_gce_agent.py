"""The VM agent's pure parts: job validation (hostile values refused), bundles, parsing, time format.

The agent runs for real (as a subprocess, against the GCS emulator and a fake metadata server)
in ``tests/integration/gce_agent/``.
"""

from __future__ import annotations

import io
import json
import re
import sys
import tarfile
from pathlib import Path
from typing import Any

import pytest

from goldfish.backends.gce.vm import docker_cli, errors, files, gpus, job_spec, layout, storage

ROOT = "/var/lib/goldfish/jobs"
RUN_ID = "stage-0123456789ab"
JOB_DIR = f"{ROOT}/{RUN_ID}/a1"
IMAGE = "registry.local:5000/goldfish/stage:abc123"
BUCKET = "gs://goldfish-bucket/proj"
ISO_UTC = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z$")


def docker_run(job_dir: str = JOB_DIR, image: str = IMAGE) -> list[str]:
    mount = f"type=bind,source={job_dir}/code,target=/mnt/code,readonly"
    return [
        "docker",
        "run",
        "--name",
        f"goldfish-{RUN_ID}",
        "--user",
        "1000:1000",
        "--mount",
        mount,
        "--mount",
        f"type=bind,source={job_dir}/logs,target=/mnt/logs",
        "--env",
        "GOLDFISH_RUN_ID=stage-0123456789ab",
        "--env",
        "API_TOKEN",
        "--",
        image,
        "/bin/sh",
        "-c",
        "echo hi",
    ]


def job(**overrides: Any) -> dict[str, Any]:
    base = f"{BUCKET}/runs/{RUN_ID}"
    raw: dict[str, Any] = {
        "schema_version": 1,
        "stage_run_id": RUN_ID,
        "attempt": 1,
        "image": IMAGE,
        "command": ["python", "-m", "modules.train"],
        "env": {"GOLDFISH_RUN_ID": RUN_ID},
        "job_dir": JOB_DIR,
        "container_name": f"goldfish-{RUN_ID}",
        "docker_run": docker_run(),
        "bundle_uri": f"{base}/bundle.tar.gz",
        "secrets_uri": None,
        "inputs": [
            {"name": "features", "uri": f"{BUCKET}/runs/stage-aaaaaaaaaaaa/outputs/features/", "kind": "dir"},
            {"name": "vocab", "uri": f"{BUCKET}/datasets/vocab.txt", "kind": "file"},
        ],
        "outputs": ["model", "score"],
        "outputs_uri": f"{base}/outputs/",
        "logs": {
            "stdout": f"{base}/logs/stdout.log",
            "stderr": f"{base}/logs/stderr.log",
            "metrics": f"{base}/logs/metrics.jsonl",
            "exit_code": f"{base}/logs/exit_code.txt",
            "heartbeat": f"{base}/heartbeat.json",
            "ack": f"{base}/ack.json",
            "failure": f"{base}/failure.json",
            "preempted": f"{base}/preempted.json",
            "stage_heartbeat": f"{base}/logs/stage_heartbeat.json",
        },
        "log_sync_interval": 10,
        "timeout_seconds": 3600,
        "gpu_count": 0,
        "gpu_wait_seconds": 60,
    }
    raw.update(overrides)
    return raw


def refusal(raw: object, root: str = ROOT) -> str:
    with pytest.raises(errors.JobRefused) as caught:
        job_spec.validate_job(raw, root)
    return caught.value.reason


# -- job.json ----------------------------------------------------------------------------------


def test_validate_job_when_every_field_is_valid_returns_the_job() -> None:
    checked = job_spec.validate_job(job(), ROOT)
    assert checked.stage_run_id == RUN_ID
    assert checked.job_dir == layout.job_dir(RUN_ID, 1) == JOB_DIR
    assert checked.docker_run == tuple(docker_run())
    assert [spec.kind for spec in checked.inputs] == ["dir", "file"]
    assert checked.outputs == ("model", "score")
    assert checked.logs["stage_heartbeat"].endswith("stage_heartbeat.json")
    assert checked.log_sync_interval == 10.0


def test_validate_job_when_outputs_uri_lacks_its_slash_adds_it() -> None:
    checked = job_spec.validate_job(job(outputs_uri=f"{BUCKET}/runs/{RUN_ID}/outputs"), ROOT)
    assert checked.outputs_uri.endswith("/outputs/")


@pytest.mark.parametrize(
    "argv",
    [
        ["sh", "-c", "docker run --rm evil"],
        ["docker", "exec", "goldfish-x", "sh"],
        ["/usr/bin/docker", "run", "--", IMAGE],
        "docker run image",
        ["docker", "run", 3, "--", IMAGE],
        [],
    ],
)
def test_validate_job_when_docker_run_is_not_a_docker_run_argv_refuses(argv: object) -> None:
    assert "docker_run" in refusal(job(docker_run=argv))


@pytest.mark.parametrize(
    ("extra", "problem"),
    [
        (["--privileged"], "--privileged"),
        (["--volume", "/:/host"], "--volume"),
        (["-v", "/etc:/etc"], "-v"),
        (["--cap-add=SYS_ADMIN"], "--cap-add"),
        (["--detach"], "--detach"),
        (["--network", "host"], "host network"),
        (["--net=host"], "host network"),
        (["--user", "0:0"], "as root"),
        (["--user=root"], "as root"),
        (["--security-opt", "seccomp=unconfined"], "confinement"),
        (["--mount=type=bind,source=/,target=/host"], "outside job_dir"),
        (["--mount", "type=bind,source=/etc,target=/mnt/etc"], "outside job_dir"),
        (["--mount", f"type=bind,source={JOB_DIR}/../../other/a1/logs,target=/x"], "outside job_dir"),
        (["--mount", f"type=bind,src={ROOT}/stage-ffffffffffff/a1/outputs,target=/x"], "outside job_dir"),
    ],
)
def test_validate_job_when_docker_run_carries_a_dangerous_option_refuses(
    extra: list[str], problem: str
) -> None:
    argv = docker_run()
    argv[2:2] = extra
    assert problem in refusal(job(docker_run=argv))


def test_validate_job_when_docker_run_runs_another_image_or_container_refuses() -> None:
    assert "image" in refusal(job(docker_run=docker_run(image="evil/image:1")))
    argv = docker_run()
    argv[argv.index("--name") + 1] = "someone-else"
    assert "container_name" in refusal(job(docker_run=argv))
    assert "'--'" in refusal(job(docker_run=[item for item in docker_run() if item != "--"]))


@pytest.mark.parametrize(
    "directory",
    [
        f"{ROOT}/{RUN_ID}/a1/../../../../etc",
        f"{ROOT}/../jobs/{RUN_ID}/a1",
        "/etc",
        f"{ROOT}/{RUN_ID}/a2",
        f"{ROOT}/{RUN_ID}",
        f"relative/{RUN_ID}/a1",
        None,
    ],
)
def test_validate_job_when_job_dir_is_not_this_attempts_folder_refuses(directory: object) -> None:
    assert "job_dir" in refusal(job(job_dir=directory))


def test_validate_job_when_a_sandbox_root_is_given_accepts_job_dirs_only_there(tmp_path: Path) -> None:
    root = str(tmp_path / "jobs")
    directory = f"{root}/{RUN_ID}/a1"
    sandboxed = job(job_dir=directory, docker_run=docker_run(job_dir=directory))
    assert job_spec.validate_job(sandboxed, root).job_dir == directory
    assert "job_dir" in refusal(job(), root)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("bundle_uri", "https://storage.googleapis.com/b/bundle.tar.gz"),
        ("bundle_uri", "file:///etc/passwd"),
        ("secrets_uri", "s3://bucket/secrets.json"),
        ("outputs_uri", "gs://bucket"),
        ("outputs_uri", "gs://Bad_Bucket/outputs/"),
        ("outputs_uri", "gs://bucket/out\nputs/"),
        ("outputs_uri", None),
    ],
)
def test_validate_job_when_a_uri_is_not_a_gs_uri_refuses(field: str, value: object) -> None:
    assert field in refusal(job(**{field: value}))


def test_validate_job_when_a_log_or_input_uri_is_not_gs_refuses() -> None:
    logs = dict(job()["logs"], stdout="http://attacker.example/stdout.log")
    assert "logs.stdout" in refusal(job(logs=logs))
    inputs = [{"name": "features", "uri": "/etc/shadow", "kind": "file"}]
    assert "input features" in refusal(job(inputs=inputs))


def test_validate_job_when_a_required_log_uri_is_missing_refuses() -> None:
    logs = {key: value for key, value in job()["logs"].items() if key != "exit_code"}
    assert "exit_code" in refusal(job(logs=logs))


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("schema_version", 2),
        ("schema_version", True),
        ("stage_run_id", "../../etc"),
        ("stage_run_id", "stage-1; rm -rf /"),
        ("stage_run_id", ""),
        ("attempt", 0),
        ("attempt", True),
        ("attempt", "1"),
        ("image", "--privileged"),
        ("image", "img ; reboot"),
        ("container_name", "-x"),
        ("inputs", [{"name": "../up", "uri": f"{BUCKET}/x", "kind": "dir"}]),
        ("inputs", [{"name": "a", "uri": f"{BUCKET}/x", "kind": "symlink"}]),
        ("inputs", [{"name": "a", "uri": f"{BUCKET}/x"}, {"name": "a", "uri": f"{BUCKET}/y"}]),
        ("outputs", ["model/../../etc"]),
        ("outputs", ["a", "a"]),
        ("log_sync_interval", 0),
        ("log_sync_interval", "10"),
        ("gpu_count", -1),
        ("timeout_seconds", 0),
    ],
)
def test_validate_job_when_a_field_is_hostile_or_wrong_refuses(field: str, value: object) -> None:
    refusal(job(**{field: value}))


def test_validate_job_when_not_an_object_refuses() -> None:
    assert "JSON object" in refusal(["not", "a", "job"])


def test_failure_uri_when_the_job_is_invalid_but_its_failure_uri_is_valid_returns_it() -> None:
    broken = job(docker_run=["sh", "-c", "reboot"])
    assert job_spec.failure_uri(broken) == f"{BUCKET}/runs/{RUN_ID}/failure.json"
    assert job_spec.failure_uri({"logs": {"failure": "http://x/y"}}) is None
    assert job_spec.failure_uri("nonsense") is None


def test_parse_job_pointer_when_valid_returns_its_key_and_refuses_hostile_values() -> None:
    pointer = job_spec.parse_job_pointer(
        json.dumps({"stage_run_id": RUN_ID, "attempt": 2, "job_uri": f"{BUCKET}/j"})
    )
    assert pointer.key == (RUN_ID, 2)
    for text in (
        "not json",
        "[]",
        json.dumps({"stage_run_id": "$(reboot)", "attempt": 1, "job_uri": "gs://b/j"}),
    ):
        with pytest.raises(errors.JobRefused):
            job_spec.parse_job_pointer(text)


def test_parse_warm_config_when_absent_is_cold_and_when_valid_is_warm() -> None:
    assert job_spec.parse_warm_config(None) is None
    warm = job_spec.parse_warm_config(
        json.dumps({"idle_timeout_seconds": 600, "state_uri": "gs://bkt/warm/vm/state.json"})
    )
    assert warm == job_spec.WarmConfig(600.0, "gs://bkt/warm/vm/state.json")
    with pytest.raises(errors.JobRefused):
        job_spec.parse_warm_config(json.dumps({"idle_timeout_seconds": "soon"}))


def test_parse_secrets_when_bad_never_echoes_the_values() -> None:
    assert job_spec.parse_secrets(b'{"API_TOKEN": "abc"}') == {"API_TOKEN": "abc"}
    for data in (b'{"API_TOKEN": 5}', b'{"bad name": "hunter2-value"}', b"hunter2-value"):
        with pytest.raises(errors.AgentFailure) as caught:
            job_spec.parse_secrets(data)
        assert "hunter2" not in caught.value.reason


# -- bundles and files -------------------------------------------------------------------------


def tar_gz(path: Path, members: list[tarfile.TarInfo], contents: dict[str, bytes] | None = None) -> Path:
    contents = contents or {}
    with tarfile.open(path, "w:gz") as tar:
        for member in members:
            data = contents.get(member.name)
            if data is not None:
                member.size = len(data)
            tar.addfile(member, io.BytesIO(data) if data is not None else None)
    return path


def file_member(name: str) -> tarfile.TarInfo:
    member = tarfile.TarInfo(name)
    member.mode = 0o644
    return member


def test_safe_extract_when_the_bundle_is_clean_extracts_code_and_config(tmp_path: Path) -> None:
    folder = tarfile.TarInfo("code/modules")
    folder.type = tarfile.DIRTYPE
    script = file_member("code/modules/train.py")
    script.mode = 0o755
    archive = tar_gz(
        tmp_path / "b.tar.gz",
        [folder, script, file_member("./config/config.json")],
        {"code/modules/train.py": b"print(1)\n", "./config/config.json": b"{}"},
    )
    destination = tmp_path / "job"
    assert files.safe_extract(str(archive), str(destination)) == 2
    assert (destination / "code/modules/train.py").read_bytes() == b"print(1)\n"
    assert (destination / "code/modules/train.py").stat().st_mode & 0o777 == 0o755
    assert (destination / "config/config.json").read_bytes() == b"{}"


def _symlink(name: str, target: str) -> tarfile.TarInfo:
    member = tarfile.TarInfo(name)
    member.type = tarfile.SYMTYPE
    member.linkname = target
    return member


def _hardlink(name: str, target: str) -> tarfile.TarInfo:
    member = tarfile.TarInfo(name)
    member.type = tarfile.LNKTYPE
    member.linkname = target
    return member


def _device(name: str) -> tarfile.TarInfo:
    member = tarfile.TarInfo(name)
    member.type = tarfile.CHRTYPE
    return member


@pytest.mark.parametrize(
    ("member", "problem"),
    [
        (file_member("code/../../escape.txt"), "'..'"),
        (file_member("../escape.txt"), "'..'"),
        (file_member("/etc/cron.d/evil"), "absolute"),
        (_symlink("code/link", "/etc/shadow"), "link"),
        (_hardlink("code/hard", "/etc/shadow"), "link"),
        (_device("code/null"), "special"),
        (file_member("logs/stdout.log"), "outside code/ and config/"),
    ],
)
def test_safe_extract_when_a_member_is_hostile_refuses_and_extracts_nothing(
    tmp_path: Path, member: tarfile.TarInfo, problem: str
) -> None:
    first = file_member("code/ok.py")
    archive = tar_gz(tmp_path / "b.tar.gz", [first, member], {"code/ok.py": b"x", member.name: b"evil"})
    destination = tmp_path / "job"
    destination.mkdir()
    with pytest.raises(errors.AgentFailure) as caught:
        files.safe_extract(str(archive), str(destination))
    assert problem in caught.value.reason
    assert list(destination.iterdir()) == []
    assert not (tmp_path / "escape.txt").exists()


def test_safe_extract_when_the_archive_is_not_a_tar_gz_fails_as_infra_error(tmp_path: Path) -> None:
    archive = tmp_path / "b.tar.gz"
    archive.write_bytes(b"not a tarball")
    with pytest.raises(errors.AgentFailure, match="cannot be extracted"):
        files.safe_extract(str(archive), str(tmp_path / "job"))


def test_relative_object_path_when_a_name_climbs_out_refuses() -> None:
    assert files.relative_object_path("runs/x/features/a/b.txt", "runs/x/features/") == "a/b.txt"
    assert files.relative_object_path("runs/x/features/", "runs/x/features/") == ""
    for name in ("runs/x/features/../../../etc/passwd", "runs/x/features//abs", "runs/x/features/./a"):
        with pytest.raises(errors.AgentFailure):
            files.relative_object_path(name, "runs/x/features/")


def test_output_files_when_an_output_holds_a_symlink_refuses(tmp_path: Path) -> None:
    model = tmp_path / "model"
    (model / "sub").mkdir(parents=True)
    (model / "sub" / "w.bin").write_bytes(b"w")
    (model / "a.txt").write_text("a")
    assert [name for name, _ in files.output_files(str(model))] == ["a.txt", "sub/w.bin"]
    (tmp_path / "score").write_text("1")
    assert [name for name, _ in files.output_files(str(tmp_path / "score"))] == ["score"]
    (model / "sub" / "leak").symlink_to("/etc/passwd")
    with pytest.raises(errors.UnsafeFile):
        files.output_files(str(model))
    (tmp_path / "linked").symlink_to(model)
    with pytest.raises(errors.UnsafeFile):
        files.output_files(str(tmp_path / "linked"))


def test_read_exit_code_when_the_file_is_a_link_or_garbage_returns_none(tmp_path: Path) -> None:
    assert files.read_exit_code(str(tmp_path)) is None
    (tmp_path / "exit_code.txt").write_text("3")
    assert files.read_exit_code(str(tmp_path)) == 3
    (tmp_path / "exit_code.txt").write_text("three")
    assert files.read_exit_code(str(tmp_path)) is None
    (tmp_path / "exit_code.txt").unlink()
    (tmp_path / "real").write_text("0")
    (tmp_path / "exit_code.txt").symlink_to(tmp_path / "real")
    assert files.read_exit_code(str(tmp_path)) is None


def test_open_regular_when_given_a_fifo_refuses_without_blocking(tmp_path: Path) -> None:
    fifo = tmp_path / "stdout.log"
    import os

    os.mkfifo(fifo)
    with pytest.raises(errors.UnsafeFile):
        files.open_regular(str(fifo))


# -- small parsers -----------------------------------------------------------------------------


def test_iso_utc_when_formatting_is_utc_iso8601_with_z() -> None:
    assert layout.iso_utc(0) == "1970-01-01T00:00:00Z"
    assert ISO_UTC.fullmatch(layout.iso_utc())


def test_job_dir_when_built_is_under_the_job_root() -> None:
    assert layout.JOB_ROOT == "/var/lib/goldfish/jobs"
    assert layout.SCHEMA_VERSION == 1
    assert layout.job_dir("stage-abcdef", 3) == "/var/lib/goldfish/jobs/stage-abcdef/a3"


def test_gpus_with_free_memory_when_parsing_nvidia_smi_counts_gpus_with_free_memory() -> None:
    assert gpus.gpus_with_free_memory("80000\n81000\n") == 2
    assert gpus.gpus_with_free_memory("0\n[N/A]\n\n") == 0
    assert gpus.gpus_with_free_memory("80000\n559\n", min_free_mb=1000) == 1


def test_range_end_when_parsing_a_308_gives_the_next_offset() -> None:
    assert storage._range_end("bytes=0-262143") == 262144
    assert storage._range_end("") == 0


def _fake_tool(folder: Path, name: str, body: str) -> None:
    path = folder / name
    path.write_text(f"#!{sys.executable}\n{body}")
    path.chmod(0o755)


def test_docker_pull_when_every_try_fails_reports_what_docker_said(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _fake_tool(
        tmp_path, "docker", "import sys\nprint('manifest unknown: nope', file=sys.stderr)\nsys.exit(1)\n"
    )
    monkeypatch.setenv("PATH", f"{tmp_path}:/usr/bin:/bin")
    monkeypatch.setattr(docker_cli, "PULL_RETRY_DELAYS", (0.0,))
    with pytest.raises(errors.AgentFailure) as caught:
        docker_cli.docker_pull(IMAGE)
    assert "manifest unknown" in caught.value.reason


def test_wait_for_gpus_when_none_appear_fails_with_what_nvidia_smi_said(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _fake_tool(tmp_path, "nvidia-smi", "print('0')\n")
    monkeypatch.setenv("PATH", f"{tmp_path}:/usr/bin:/bin")
    with pytest.raises(errors.AgentFailure) as caught:
        gpus.wait_for_gpus(1, 0)
    assert "nvidia-smi shows 0 GPU(s)" in caught.value.reason
    _fake_tool(tmp_path, "nvidia-smi", "print('81000')\n")
    gpus.wait_for_gpus(1, 0)


def test_mask_file_when_a_value_straddles_two_chunks_still_masks_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(files, "COPY_CHUNK", 7)
    source, target = tmp_path / "stdout.log", tmp_path / "masked"
    source.write_bytes(b"line one s3cr3t-value here\nand s3cr3t-value again\n")

    files.mask_file(str(source), str(target), ["s3cr3t-value"])

    assert target.read_bytes() == b"line one *** here\nand *** again\n"
