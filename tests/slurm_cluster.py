"""A real single-machine Slurm cluster for tests: munged, slurmctld and slurmd on localhost.

`single_node_cluster(workdir)` writes a minimal slurm.conf and a fresh munge key into
`workdir`, starts the three daemons there (as root, each in its own process group, with
`-f`/`--socket` pointing at the private files, so a system-wide Slurm or munge is never
touched), waits until `sinfo` shows the node idle, and yields a `SlurmCluster`. On exit,
also on failure, it cancels every job, stops each daemon it started by PID (SIGTERM, then
SIGKILL) and ends the `slurmstepd` processes its own slurmd forked. Every wait has a
timeout, so a broken Slurm fails the test instead of hanging CI.

What the configuration leaves out (it is a test cluster, not a site template): no cgroups
(`proctrack/linuxproc`, `task/none`: containers and gVisor sandboxes do not delegate cgroups),
no accounting database (`accounting_storage/none`, so `sacct` cannot answer: clients must
query job states with `squeue`), one partition holding the one node.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

DAEMONS = ("munged", "slurmctld", "slurmd")
CLIENTS = ("munge", "sbatch", "squeue", "scancel", "sinfo", "scontrol")
PARTITION = "migsim"
# Marker in the daemons' environment: slurmstepd inherits it from slurmd, which lets the
# teardown find the job-step daemons that this cluster (and no other) forked.
MARKER_VAR = "MIGSIM_TEST_SLURM_CLUSTER"
# Seconds a finished job stays visible to `squeue`. The executor plugin needs it to be at
# least 3x its first status-check delay before it trusts `squeue` over `sacct`.
MIN_JOB_AGE_S = 3600


class SlurmClusterError(RuntimeError):
    """The test cluster could not be started or did not answer in time."""


def _which(name: str) -> str | None:
    # Daemons live in /usr/sbin, which a non-login root shell may not have on PATH.
    return shutil.which(name) or shutil.which(name, path="/usr/sbin:/sbin:/usr/bin")


def missing_binaries() -> list[str]:
    """Names of the Slurm and munge programs that are not installed."""
    return [name for name in DAEMONS + CLIENTS if _which(name) is None]


def machine_cpus() -> int:
    """Logical CPUs of this machine, as slurmd detects them."""
    return os.cpu_count() or 1


def machine_memory_mb() -> int:
    """Physical memory in MiB (MemTotal of /proc/meminfo), as slurmd reports RealMemory."""
    with open("/proc/meminfo", encoding="ascii") as meminfo:
        for line in meminfo:
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) // 1024
    raise SlurmClusterError("MemTotal missing from /proc/meminfo")


def _free_ports(count: int) -> list[int]:
    """`count` distinct TCP ports on localhost that nothing listens on right now."""
    with contextlib.ExitStack() as stack:
        ports = []
        for _ in range(count):
            sock = stack.enter_context(socket.socket(socket.AF_INET, socket.SOCK_STREAM))
            sock.bind(("127.0.0.1", 0))
            ports.append(sock.getsockname()[1])
        return ports


def write_slurm_conf(
    root: Path,
    *,
    hostname: str,
    cpus: int,
    memory_mb: int,
    ctld_port: int,
    slurmd_port: int,
    munge_socket: Path,
) -> Path:
    """Write a minimal single-node slurm.conf under `root`; return its path."""
    spool = root / "spool"
    log = root / "log"
    etc = root / "etc"
    for path in (spool / "ctld", spool / "slurmd", log, etc):
        path.mkdir(parents=True, exist_ok=True)
    lines = [
        "ClusterName=migsimtest",
        f"SlurmctldHost={hostname}(127.0.0.1)",
        f"SlurmctldPort={ctld_port}",
        f"SlurmdPort={slurmd_port}",
        "SlurmUser=root",
        "SlurmdUser=root",
        "AuthType=auth/munge",
        "CredType=cred/munge",
        f"AuthInfo=socket={munge_socket}",
        f"StateSaveLocation={spool / 'ctld'}",
        f"SlurmdSpoolDir={spool / 'slurmd'}",
        f"SlurmctldPidFile={root / 'slurmctld.pid'}",
        f"SlurmdPidFile={root / 'slurmd.pid'}",
        f"SlurmctldLogFile={log / 'slurmctld.log'}",
        f"SlurmdLogFile={log / 'slurmd.log'}",
        "SlurmctldDebug=info",
        "SlurmdDebug=info",
        # No cgroups: track job processes through /proc, bind no CPUs.
        "ProctrackType=proctrack/linuxproc",
        "TaskPlugin=task/none",
        "JobAcctGatherType=jobacct_gather/none",
        "AccountingStorageType=accounting_storage/none",
        "JobCompType=jobcomp/none",
        "MpiDefault=none",
        # Cores and memory are consumable, so --cpus-per-task and --mem are enforced by
        # the scheduler like on a site cluster.
        "SelectType=select/cons_tres",
        "SelectTypeParameters=CR_Core_Memory",
        "SchedulerType=sched/backfill",
        "ReturnToService=2",
        f"MinJobAge={MIN_JOB_AGE_S}",
        "SlurmctldTimeout=30",
        "SlurmdTimeout=30",
        "InactiveLimit=0",
        "KillWait=5",
        f"NodeName={hostname} NodeAddr=127.0.0.1 CPUs={cpus} RealMemory={memory_mb} State=UNKNOWN",
        f"PartitionName={PARTITION} Nodes={hostname} Default=YES MaxTime=INFINITE State=UP",
    ]
    conf = etc / "slurm.conf"
    conf.write_text("\n".join(lines) + "\n", encoding="ascii")
    return conf


@dataclass
class SlurmCluster:
    """A running single-node cluster: its files, its node and the daemons' processes."""

    root: Path
    conf: Path
    hostname: str
    partition: str
    cpus: int
    memory_mb: int
    munge_socket: Path
    processes: dict[str, subprocess.Popen] = field(default_factory=dict)

    @property
    def env(self) -> dict[str, str]:
        """Environment for Slurm client commands (and for snakemake) aimed at this cluster."""
        # Drop the settings of any other Slurm (e.g. of an outer job running the tests).
        prefixes = ("SLURM_", "SBATCH_", "SRUN_", "SALLOC_", "SQUEUE_", "SINFO_", "SCANCEL_")
        env = {k: v for k, v in os.environ.items() if not k.startswith(prefixes)}
        env["SLURM_CONF"] = str(self.conf)
        return env

    def run(
        self, *args: str, timeout: float = 30, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        """Run a Slurm client command against this cluster; return its completed process."""
        try:
            proc = subprocess.run(
                list(args),
                env=self.env,
                cwd=self.root,
                capture_output=True,
                text=True,
                timeout=timeout,
                stdin=subprocess.DEVNULL,
            )
        except subprocess.TimeoutExpired as exc:
            raise SlurmClusterError(f"{' '.join(args)} did not answer in {timeout} s") from exc
        if check and proc.returncode != 0:
            raise SlurmClusterError(
                f"{' '.join(args)} failed ({proc.returncode}): {proc.stderr.strip()}"
            )
        return proc

    def node_state(self) -> str:
        """The node's state as `sinfo` prints it (idle, mix, alloc, down*, ...)."""
        out = self.run("sinfo", "--noheader", "--Node", "--format=%t", check=False)
        return out.stdout.strip() if out.returncode == 0 else f"unreachable: {out.stderr.strip()}"

    def job_states(self, name: str | None = None) -> dict[str, str]:
        """Job id -> state of every job slurmctld still knows (finished ones included)."""
        args = ["squeue", "--noheader", "--states=all", "--format=%i|%T"]
        if name is not None:
            args.append(f"--name={name}")
        out = self.run(*args)
        states = {}
        for line in out.stdout.splitlines():
            if "|" in line:
                job_id, state = line.strip().split("|", 1)
                states[job_id] = state
        return states

    def sbatch_wrap(self, command: str, *extra: str) -> str:
        """Submit `command` with `sbatch --wrap`; return the job id."""
        out = self.run(
            "sbatch", "--parsable", f"--partition={self.partition}", *extra, f"--wrap={command}"
        )
        return out.stdout.strip().split(";")[0]

    def wait_for_job(self, job_id: str, states: Sequence[str], timeout: float = 60) -> str:
        """Wait until job `job_id` reaches one of `states`; return the state reached."""
        deadline = time.monotonic() + timeout
        state = "unknown"
        while time.monotonic() < deadline:
            state = self.job_states().get(job_id, "unknown")
            if state in states:
                return state
            time.sleep(0.5)
        raise SlurmClusterError(f"job {job_id} still {state} after {timeout} s, not {states}")

    def set_partition_state(self, state: str) -> None:
        """UP runs jobs; DOWN keeps new and pending jobs queued without starting them."""
        self.run("scontrol", "update", f"PartitionName={self.partition}", f"State={state}")

    def logs(self, lines: int = 20) -> str:
        """The last `lines` lines of every daemon log, for error messages."""
        parts = []
        for path in sorted((self.root / "log").glob("*")):
            text = path.read_text(errors="replace").splitlines()[-lines:]
            parts.append(f"--- {path.name}\n" + "\n".join(text))
        return "\n".join(parts)


def _start(name: str, args: list[str], cluster: SlurmCluster, env: dict[str, str]) -> None:
    log = (cluster.root / "log" / f"{name}.out").open("ab")
    try:
        cluster.processes[name] = subprocess.Popen(
            args,
            cwd=cluster.root,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # own process group: stopped as a group at teardown
        )
    finally:
        log.close()


def _wait(what: str, ready, cluster: SlurmCluster, timeout: float) -> None:
    """Poll `ready()` until true; fail early if a daemon died, late if time runs out."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for name, proc in cluster.processes.items():
            if proc.poll() is not None:
                raise SlurmClusterError(
                    f"{name} exited with {proc.returncode} while waiting for {what}\n"
                    + cluster.logs()
                )
        if ready():
            return
        time.sleep(0.5)
    raise SlurmClusterError(f"timed out after {timeout} s waiting for {what}\n" + cluster.logs())


def _munge_ready(cluster: SlurmCluster) -> bool:
    if not cluster.munge_socket.exists():
        return False
    sock = f"--socket={cluster.munge_socket}"
    try:
        cred = subprocess.run(["munge", sock, "-n"], capture_output=True, timeout=10, check=True)
        subprocess.run(
            ["unmunge", sock], input=cred.stdout, capture_output=True, timeout=10, check=True
        )
    except (subprocess.CalledProcessError, subprocess.TimeoutExpired):
        return False
    return True


def _stepd_pids(marker: str) -> list[int]:
    """PIDs of slurmstepd processes forked by this cluster's slurmd (found by the marker)."""
    pids = []
    needle = f"{MARKER_VAR}={marker}".encode()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if not (entry / "cmdline").read_bytes().startswith(b"slurmstepd"):
                continue
            if needle in (entry / "environ").read_bytes().split(b"\0"):
                pids.append(int(entry.name))
        except OSError:
            continue  # exited meanwhile, or not ours to read
    return pids


def _stop_process(proc: subprocess.Popen, grace_s: float = 10) -> None:
    """SIGTERM the process group of `proc`, then SIGKILL it if it has not exited in time."""
    if proc.poll() is not None:
        return
    for sig in (signal.SIGTERM, signal.SIGKILL):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, sig)  # start_new_session: the group id is the PID
        try:
            proc.wait(timeout=grace_s)
            return
        except subprocess.TimeoutExpired:
            continue


def _slurmd_command(conf: Path, hostname: str) -> list[str]:
    """slurmd in a private mount namespace where /etc/slurm is this cluster's config dir.

    Jobs run under slurmd, so they see the node's config where a site installs it: the
    job-step executor (snakemake-executor-plugin-slurm-jobstep) removes SLURM_CONF, like all
    SLURM_* variables, from the environment of its nested `srun`, which then reads
    /etc/slurm/slurm.conf. The bind mount is private to slurmd and its jobs and disappears
    with them: the machine's /etc/slurm is never changed.
    """
    slurmd = _which("slurmd") or "slurmd"
    script = 'mount --bind "$1" /etc/slurm && shift && exec "$@"'
    return [
        _which("unshare") or "unshare",
        "--mount",
        "--propagation=private",
        "sh",
        "-c",
        script,
        "sh",
        str(conf.parent),
        slurmd,
        "-D",
        "-f",
        str(conf),
        "-N",
        hostname,
    ]


def stop_cluster(cluster: SlurmCluster) -> None:
    """Cancel all jobs, then stop slurmd, slurmctld and munged (in that order) by PID."""
    ctld = cluster.processes.get("slurmctld")
    if ctld is not None and ctld.poll() is None:
        with contextlib.suppress(SlurmClusterError):
            cluster.run("scancel", f"--partition={cluster.partition}", timeout=15, check=False)
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline and any(
                s in ("PENDING", "RUNNING", "COMPLETING", "SUSPENDED")
                for s in cluster.job_states().values()
            ):
                time.sleep(0.5)
    for name in ("slurmd", "slurmctld", "munged"):
        if name in cluster.processes:
            _stop_process(cluster.processes[name])
    # Job-step daemons outlive slurmd (they are re-parented to init): end ours by PID.
    marker = str(cluster.root)
    for sig in (signal.SIGTERM, signal.SIGKILL):
        pids = _stepd_pids(marker)
        if not pids:
            break
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, sig)
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and _stepd_pids(marker):
            time.sleep(0.2)


@contextlib.contextmanager
def single_node_cluster(root: Path, *, start_timeout: float = 60) -> Iterator[SlurmCluster]:
    """Start munged, slurmctld and slurmd with private files under `root`; stop them on exit.

    Needs root (the daemons run as root, like SlurmUser=root on the node) and the programs
    of Debian's `slurm-wlm` and `munge` packages.
    """
    missing = missing_binaries()
    if missing:
        raise SlurmClusterError(f"Slurm/munge programs not installed: {', '.join(missing)}")
    if os.geteuid() != 0:
        raise SlurmClusterError("the test cluster's daemons must be started as root")
    root = Path(root).resolve()
    # munged insists that every directory above its socket is searchable by all users.
    root.mkdir(parents=True, exist_ok=True)
    root.chmod(0o755)
    munge_dir = root / "munge"
    munge_dir.mkdir(mode=0o755, exist_ok=True)
    (root / "log").mkdir(exist_ok=True)
    key = munge_dir / "munge.key"
    key.write_bytes(os.urandom(1024))
    key.chmod(0o600)

    hostname = socket.gethostname().split(".")[0]
    cpus, memory_mb = machine_cpus(), machine_memory_mb()
    munge_socket = munge_dir / "munge.socket"
    ctld_port, slurmd_port = _free_ports(2)
    conf = write_slurm_conf(
        root,
        hostname=hostname,
        cpus=cpus,
        memory_mb=memory_mb,
        ctld_port=ctld_port,
        slurmd_port=slurmd_port,
        munge_socket=munge_socket,
    )
    cluster = SlurmCluster(
        root=root,
        conf=conf,
        hostname=hostname,
        partition=PARTITION,
        cpus=cpus,
        memory_mb=memory_mb,
        munge_socket=munge_socket,
    )
    env = cluster.env | {MARKER_VAR: str(root)}
    try:
        _start(
            "munged",
            [
                _which("munged") or "munged",
                "--foreground",
                f"--key-file={key}",
                f"--socket={munge_socket}",
                f"--pid-file={munge_dir / 'munged.pid'}",
                f"--log-file={root / 'log' / 'munged.log'}",
                f"--seed-file={munge_dir / 'munged.seed'}",
            ],
            cluster,
            env,
        )
        _wait("munged", lambda: _munge_ready(cluster), cluster, start_timeout)
        _start(
            "slurmctld", [_which("slurmctld") or "slurmctld", "-D", "-f", str(conf)], cluster, env
        )
        _wait(
            "slurmctld",
            lambda: cluster.run("scontrol", "ping", check=False).returncode == 0,
            cluster,
            start_timeout,
        )
        _start("slurmd", _slurmd_command(conf, hostname), cluster, env)
        _wait(
            f"node {hostname} idle", lambda: cluster.node_state() == "idle", cluster, start_timeout
        )
        yield cluster
    finally:
        stop_cluster(cluster)
