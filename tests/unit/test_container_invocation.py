"""The one RunSpec → container builder: mounts, environment, user, limits, labels, no injection.

``container_invocation`` is pure, so these tests build specs on paper; the shared stage wrapper
is executed for real with ``/bin/sh`` to show that hostile arguments and values stay data.
"""

from __future__ import annotations

import subprocess
from dataclasses import replace
from pathlib import Path

import pytest

from goldfish.backends.container import (
    CONTAINER_LOCATIONS,
    Limits,
    container_invocation,
    docker_run_argv,
    memory_bytes,
)
from goldfish.backends.spec import STAGE_WRAPPER, RunSpec, check_env, stage_environment, wrapped_command
from goldfish.errors import InvalidArgumentError

LIMITS = Limits(memory="2g", cpus=1.5, pids=64, network=False)


def make_spec(root: Path, **changes: object) -> RunSpec:
    run_dir = root / "runs" / "stage-0123456789ab"
    spec = RunSpec(
        stage_run_id="stage-0123456789ab",
        workspace="alpha",
        stage="train",
        module="train",
        code_dir=run_dir / "code",
        run_dir=run_dir,
        inputs={"features": run_dir / "inputs" / "features"},
        outputs_dir=run_dir / "outputs",
        logs_dir=run_dir / "logs",
        config_file=run_dir / "config.json",
        signals_file=run_dir / "signals.json",
        timeout_seconds=60,
        python="/usr/bin/python3",
        image="goldfish-stage:0123456789abcdef",
        env={"LEARNING_RATE": "0.1"},
    )
    return replace(spec, **changes)  # type: ignore[arg-type]


def invocation_of(spec: RunSpec, **overrides: object) -> object:
    arguments: dict[str, object] = {
        "image": "goldfish-stage:0123456789abcdef",
        "user": "1000:1000",
        "limits": LIMITS,
        "project": "proj0123",
    }
    arguments.update(overrides)
    return container_invocation(spec, **arguments)  # type: ignore[arg-type]


def test_invocation_when_built_mounts_inputs_code_config_read_only_and_outputs_logs_work_read_write(
    tmp_path: Path,
) -> None:
    spec = make_spec(tmp_path)

    invocation = container_invocation(spec, image="img:1", user="1000:1000", limits=LIMITS, project="p")

    mounts = {m.target: (m.source, m.read_only) for m in invocation.mounts}
    assert mounts == {
        "/mnt/code": (str(spec.code_dir), True),
        "/mnt/work": (str(spec.work_dir), False),
        "/mnt/inputs": (str(spec.inputs_dir), True),
        "/mnt/outputs": (str(spec.outputs_dir), False),
        "/mnt/logs": (str(spec.logs_dir), False),
        "/mnt/config/config.json": (str(spec.config_file), True),
        "/mnt/config/signals.json": (str(spec.signals_file), True),
        "/mnt/control": (str(spec.control_dir), True),
    }


def test_invocation_when_built_points_every_goldfish_variable_at_container_paths(tmp_path: Path) -> None:
    spec = make_spec(tmp_path)

    env = container_invocation(spec, image="img:1", user="1000", limits=LIMITS, project="p").env

    assert env["GOLDFISH_CODE_DIR"] == "/mnt/code"
    assert env["GOLDFISH_WORK_DIR"] == "/mnt/work"
    assert env["GOLDFISH_INPUTS_DIR"] == "/mnt/inputs"
    assert env["GOLDFISH_OUTPUTS_DIR"] == "/mnt/outputs"
    assert env["GOLDFISH_CONFIG"] == "/mnt/config/config.json"
    assert env["GOLDFISH_SIGNALS"] == "/mnt/config/signals.json"
    assert env["GOLDFISH_LOGS_DIR"] == "/mnt/logs"
    assert env["GOLDFISH_METRICS_FILE"] == "/mnt/logs/metrics.jsonl"
    assert env["GOLDFISH_EXIT_FILE"] == "/mnt/logs/exit_code.txt"
    assert env["GOLDFISH_STOP_FILE"] == "/mnt/control/stop"
    assert (env["GOLDFISH_RUN_ID"], env["GOLDFISH_STAGE"], env["GOLDFISH_WORKSPACE"]) == (
        "stage-0123456789ab",
        "train",
        "alpha",
    )
    assert env["PYTHONPATH"] == "/mnt/code:/opt/goldfish-runtime"
    assert env["LEARNING_RATE"] == "0.1"
    assert not any(str(tmp_path) in value for value in env.values())  # no host path leaks in


def test_invocation_when_built_carries_user_limits_labels_workdir_and_the_wrapped_module(
    tmp_path: Path,
) -> None:
    spec = make_spec(tmp_path)

    invocation = container_invocation(spec, image="img:1", user="1234:5678", limits=LIMITS, project="p1")

    assert invocation.user == "1234:5678"
    assert invocation.limits == LIMITS
    assert invocation.workdir == "/mnt/work"
    assert invocation.name == "goldfish-stage-0123456789ab"
    assert invocation.labels["goldfish.stage_run_id"] == "stage-0123456789ab"
    assert invocation.labels["goldfish.project"] == "p1"
    assert invocation.command == [
        "/bin/sh",
        "-c",
        STAGE_WRAPPER,
        "goldfish-stage",
        "python3",
        "-m",
        "modules.train",
    ]
    assert invocation.cap_drop == ["ALL"]
    assert invocation.security == ["no-new-privileges"]


@pytest.mark.parametrize("user", ["0", "0:0", "root", "1000:abc", "", "1000 ", "-1"])
def test_invocation_when_the_user_is_root_or_not_numeric_is_refused(tmp_path: Path, user: str) -> None:
    with pytest.raises(InvalidArgumentError):
        invocation_of(make_spec(tmp_path), user=user)


@pytest.mark.parametrize("image", ["--privileged", "a b", "", "img;rm", "IMG:1", "img\n"])
def test_invocation_when_the_image_name_is_not_a_plain_reference_is_refused(
    tmp_path: Path, image: str
) -> None:
    with pytest.raises(InvalidArgumentError):
        invocation_of(make_spec(tmp_path), image=image)


@pytest.mark.parametrize(
    "limits",
    [Limits(memory="lots"), Limits(memory="0g"), Limits(cpus=0), Limits(pids=0), Limits(gpus=-1)],
)
def test_invocation_when_limits_are_out_of_range_is_refused(tmp_path: Path, limits: Limits) -> None:
    with pytest.raises(InvalidArgumentError):
        invocation_of(make_spec(tmp_path), limits=limits)


@pytest.mark.parametrize(
    "key",
    [
        *("A-B", "1ABC", "A B", "X=Y", "X\n", "", "GOLDFISH_RUN_ID", "goldfish_x"),
        *("CUDA_VISIBLE_DEVICES", "Ä", "$(id)", "A;B"),
    ],
)
def test_invocation_when_an_env_key_is_hostile_or_reserved_is_refused(tmp_path: Path, key: str) -> None:
    with pytest.raises(InvalidArgumentError) as raised:
        invocation_of(make_spec(tmp_path, env={key: "1"}))
    assert raised.value.details["field"] == "env"


def test_env_check_when_a_value_holds_nul_refuses_it_and_keeps_other_hostile_values_as_data() -> None:
    with pytest.raises(InvalidArgumentError):
        check_env({"TOKEN": "a\x00b"})
    hostile = {"A": "$(touch pwned)", "B": "`id`", "C": "x; rm -rf /", "D": "line1\nline2", "E": "'\""}
    assert check_env(hostile) == hostile


def test_invocation_when_a_mount_source_holds_a_newline_is_refused(tmp_path: Path) -> None:
    with pytest.raises(InvalidArgumentError):
        invocation_of(make_spec(tmp_path / "bad\nname"))


def test_process_environment_when_built_uses_host_paths_with_the_same_keys(tmp_path: Path) -> None:
    spec = make_spec(tmp_path)

    host = stage_environment(spec, {"PATH": "/usr/bin"})
    container = stage_environment(spec, {}, CONTAINER_LOCATIONS)

    goldfish_keys = {key for key in host if key.startswith("GOLDFISH_")}
    assert goldfish_keys == {key for key in container if key.startswith("GOLDFISH_")}
    assert host["GOLDFISH_INPUTS_DIR"] == str(spec.inputs_dir)
    assert host["GOLDFISH_EXIT_FILE"] == str(spec.exit_code_file)
    assert host["PATH"] == "/usr/bin"


def test_docker_run_argv_when_rendered_keeps_every_value_one_argument_and_quotes_mount_fields(
    tmp_path: Path,
) -> None:
    spec = make_spec(tmp_path / "a,b", env={"HOSTILE": "$(touch pwned) ; `id`"})
    invocation = container_invocation(spec, image="img:1", user="1000:1000", limits=LIMITS, project="p")

    argv = docker_run_argv(invocation)

    assert argv[:3] == ["docker", "run", "--detach"]
    assert argv[argv.index("--user") + 1] == "1000:1000"
    assert argv[argv.index("--pids-limit") + 1] == "64"
    assert argv[argv.index("--memory") + 1] == "2g"
    assert argv[argv.index("--network") + 1] == "none"
    assert "--env" in argv and "HOSTILE=$(touch pwned) ; `id`" in argv
    mounts = [argv[i + 1] for i, item in enumerate(argv) if item == "--mount"]
    inputs = next(m for m in mounts if "target=/mnt/inputs" in m)
    assert inputs.endswith(",readonly")
    assert f'"source={spec.inputs_dir}"' in inputs  # the comma in the path is quoted for --mount
    separator = argv.index("--")
    assert argv[separator + 1 :] == ["img:1", *invocation.command]


def test_docker_run_argv_when_a_vm_container_is_uncapped_gives_it_the_machine_and_a_large_shm(
    tmp_path: Path,
) -> None:
    limits = Limits(memory=None, cpus=None, pids=65536, gpus=1, shm_size="64g")
    invocation = container_invocation(
        make_spec(tmp_path), image="img:1", user="1000:1000", limits=limits, project="p"
    )

    argv = docker_run_argv(invocation, detach=False)

    assert "--memory" not in argv and "--cpus" not in argv
    assert argv[argv.index("--shm-size") + 1] == "64g"
    assert argv[argv.index("--pids-limit") + 1] == "65536"
    assert argv[argv.index("--gpus") + 1] == "1"


def test_memory_bytes_when_given_docker_sizes_converts_them() -> None:
    assert memory_bytes("4g") == 4 * 1024**3
    assert memory_bytes("512m") == 512 * 1024**2
    assert memory_bytes("1000") == 1000


def test_wrapper_when_run_with_hostile_arguments_and_values_executes_nothing_of_them(tmp_path: Path) -> None:
    logs = tmp_path / "logs"
    logs.mkdir()
    hostile = ["$(touch pwned1)", "`touch pwned2`", "; touch pwned3", "a\nb", "'\"", "${HOME}"]
    env = {
        "GOLDFISH_LOGS_DIR": str(logs),
        "GOLDFISH_EXIT_FILE": str(logs / "exit_code.txt"),
        "PATH": "/usr/bin:/bin",
        "EVIL": "$(touch pwned4)",
    }

    done = subprocess.run(
        wrapped_command(["/bin/sh", "-c", 'printf "%s|" "$@"; printf "%s" "$EVIL"', "argv0", *hostile]),
        cwd=tmp_path,
        env=env,
        check=False,
    )

    assert done.returncode == 0
    assert (logs / "stdout.log").read_text() == "|".join(hostile) + "|$(touch pwned4)"
    assert (logs / "exit_code.txt").read_text() == "0"
    assert not list(tmp_path.glob("pwned*"))


def test_wrapper_when_the_stage_fails_records_its_exit_code_and_stderr(tmp_path: Path) -> None:
    logs = tmp_path / "logs"
    logs.mkdir()
    env = {"GOLDFISH_LOGS_DIR": str(logs), "GOLDFISH_EXIT_FILE": str(logs / "exit_code.txt"), "PATH": "/bin"}

    done = subprocess.run(
        wrapped_command(["/bin/sh", "-c", "echo broken >&2; exit 7"]), env=env, cwd=tmp_path, check=False
    )

    assert done.returncode == 7
    assert (logs / "exit_code.txt").read_text() == "7"
    assert (logs / "stderr.log").read_text() == "broken\n"
