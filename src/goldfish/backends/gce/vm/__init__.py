"""The Goldfish VM agent: runs stage jobs on a Compute Engine VM (standard library only).

Shipped to the VM as one zip application (``backends/gce/startup.py`` packs this package's
modules, base64 in the ``goldfish-agent`` metadata value) that ``startup.sh`` decodes and starts
as ``python3 agent.pyz`` (Python 3.9 or newer). Inside the archive the package is named
``goldfish_agent``, so modules import each other relatively and nothing outside it. The contract
it implements is ``shared/spec/gce-protocol.md``; the inside (job.json's extra fields, the agent's
life) is ``backends/gce/README.md``. In short, per VM:

1. read ``goldfish-warm`` (absent on a cold VM) and the ``goldfish-job`` pointer
   ``{"stage_run_id", "attempt", "job_uri"}`` from the metadata server;
2. per job: download and validate ``job.json`` (a job that fails validation is refused with
   ``failure.json`` and never executed) → ``ack.json`` → heartbeat + log-sync thread and a
   preemption watcher → stage the bundle and the inputs → GPU check → ``docker pull`` →
   the job's ``docker run`` argv → upload the declared outputs → ``exit_code.txt`` (always the
   last object written). Failures around the stage write ``failure.json`` (``infra_error``)
   instead of an exit code; a preemption notice kills the container, flushes the logs, writes
   ``preempted.json`` and ends the agent;
3. a cold VM powers itself off after its job; a warm VM reports ``idle`` in its state object
   and waits for the next job until its idle deadline, then powers off.

Every URI comes from job.json (or the metadata); every command is an argv list (never a shell);
secret values only ever reach the environment of the ``docker run`` process.

Modules, by job: ``layout`` (where jobs live; the server imports :data:`JOB_ROOT`,
:data:`SCHEMA_VERSION` and :func:`job_dir` from it, nothing else of this package), ``errors``,
``transport`` (HTTP), ``metadata`` (metadata server client), ``storage`` (Cloud Storage client),
``job_spec`` (job.json and metadata values validated), ``files`` (local files, the bundle),
``staging`` (job folder, bundle, inputs), ``docker_cli``, ``gpus``, ``container`` (the container
runner), ``log_sync``, ``job_run`` (one job), ``loop`` (the VM's life, ``main``).

Environment:
    GCE_METADATA_HOST: the metadata server (``host[:port]``; default ``metadata.google.internal``).
    STORAGE_EMULATOR_HOST: a Cloud Storage emulator (base URL or ``host:port``); no auth then.
    GOLDFISH_AGENT_JOB_ROOT: for sandboxes and tests only: the folder job folders must live in
        instead of ``JOB_ROOT``.
"""
