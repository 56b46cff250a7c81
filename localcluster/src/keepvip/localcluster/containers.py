"""One container of one pod, run as a local process inside its node's network namespace.

The process tree is ``ip netns exec <node> unshare --mount --uts sh launch.sh <argv>``:
``ip netns exec`` puts it on the node's LAN, ``unshare`` gives it private bind mounts (the
pod's volumes, among them its ServiceAccount token) and its own hostname, and the
launcher execs the container's command, so the process the harness holds *is* the
container (same pid), led in its own session. Stopping is by that process group only.

State is reported in the Kubernetes ``ContainerStatus`` shape, so the kubelet can copy
it into the pod's status as it is.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from keepvip.api.timestamps import utc_now
from keepvip.localcluster.podspec import ContainerPlan, Probe
from keepvip.localcluster.procs import ChildProcess


def now_rfc3339() -> str:
    """The current time the way the API writes timestamps."""
    return utc_now()


def namespace_prefix(netns: str, launcher: Path) -> list[str]:
    """argv prefix that enters the node's namespace with private mounts and hostname."""
    return ["ip", "netns", "exec", netns, "unshare", "--mount", "--uts",
            "--propagation", "private", "/bin/sh", str(launcher)]


@dataclass
class ProbeState:
    """Counters of one probe (kubelet semantics: thresholds of consecutive results)."""

    probe: Probe
    next_at: float
    successes: int = 0
    failures: int = 0
    passing: bool = False


class ContainerRunner:
    """Starts, watches, restarts and stops one container's process."""

    def __init__(self, plan: ContainerPlan, netns: str, launcher: Path, log_path: Path,
                 hook_log_path: Path) -> None:
        self.plan = plan
        self.netns = netns
        self.launcher = launcher
        self.log_path = log_path
        self.hook_log_path = hook_log_path
        self.restart_count = 0
        self.state: dict[str, Any] = {"waiting": {"reason": "ContainerCreating"}}
        self.last_state: dict[str, Any] = {}
        self.exit_code: int | None = None
        self.next_start_at = 0.0
        self.backoff = 1.0
        self._started_mono = 0.0
        self._proc: ChildProcess | None = None
        self.readiness: ProbeState | None = None
        self.liveness: ProbeState | None = None

    # -- process -----------------------------------------------------------------
    def start(self) -> None:
        """Start the process (again); probes start counting from now."""
        argv = [*namespace_prefix(self.netns, self.launcher), *self.plan.argv]
        self._proc = ChildProcess(f"container {self.plan.name}", argv, self.log_path,
                                  env=self.plan.env)
        self._proc.start()
        self._started_mono = time.monotonic()
        self.exit_code = None
        self.state = {"running": {"startedAt": now_rfc3339()}}
        if self.plan.readiness:
            self.readiness = ProbeState(self.plan.readiness,
                                        self._started_mono + self.plan.readiness.initial_delay)
        if self.plan.liveness:
            self.liveness = ProbeState(self.plan.liveness,
                                       self._started_mono + self.plan.liveness.initial_delay)

    @property
    def pid(self) -> int | None:
        """The container process's pid while running."""
        return self._proc.pid if self._proc is not None and self._proc.alive() else None

    def running(self) -> bool:
        """True while the process runs."""
        return self._proc is not None and self._proc.alive()

    def check_exit(self) -> bool:
        """Record an exit that happened since the last call; True if it just exited."""
        if self._proc is None or "running" not in self.state:
            return False
        code = self._proc.poll()
        if code is None:
            return False
        self._record_exit(code)
        return True

    def _record_exit(self, code: int) -> None:
        self.exit_code = code if code >= 0 else 128 - code
        started = self.state.get("running", {}).get("startedAt")
        self.state = {"terminated": {
            "exitCode": self.exit_code,
            "reason": "Completed" if self.exit_code == 0 else "Error",
            "startedAt": started, "finishedAt": now_rfc3339()}}
        ran = time.monotonic() - self._started_mono
        self.backoff = 1.0 if ran > 10 else min(self.backoff * 2, 10.0)
        if self.readiness:
            self.readiness.passing = False

    def schedule_restart(self) -> None:
        """Keep the terminated state as lastState and start again after the back-off."""
        self.last_state = self.state
        self.restart_count += 1
        self.next_start_at = time.monotonic() + self.backoff
        self.state = {"waiting": {"reason": "CrashLoopBackOff"}}

    def fail_to_create(self, reason: str, message: str) -> None:
        """Report that the container cannot be created (bad spec, missing secret...)."""
        self.state = {"waiting": {"reason": reason, "message": message}}

    def stop(self, grace: float) -> None:
        """SIGTERM the container's process group, SIGKILL after ``grace`` seconds."""
        if self._proc is None:
            return
        was_running = "running" in self.state
        code = self._proc.stop(grace)
        if was_running and code is not None:
            self._record_exit(code)

    def signal(self, sig: signal.Signals) -> None:
        """Send a signal to the container's process group."""
        if self._proc is not None:
            self._proc.signal(sig)

    # -- hooks and probes ----------------------------------------------------------
    def run_in_container(self, argv: list[str], timeout: float) -> int:
        """Run ``argv`` like an exec hook: same netns, mounts and env as the container.

        Output goes to the hook log. Returns the exit code (124 on timeout).
        """
        cmd = [*namespace_prefix(self.netns, self.launcher), *argv]
        with self.hook_log_path.open("ab") as log:
            proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=log,
                                    stderr=subprocess.STDOUT, env=self.plan.env,
                                    start_new_session=True)
            try:
                return proc.wait(timeout=max(timeout, 0.1))
            except subprocess.TimeoutExpired:
                ChildProcess.kill_popen(proc)
                return 124

    def run_pre_stop(self, timeout: float) -> None:
        """Run the preStop exec hook, if any, bounded by ``timeout`` seconds."""
        if self.plan.pre_stop:
            self.run_in_container(self.plan.pre_stop, timeout)

    def _probe_once(self, probe: Probe) -> bool:
        if probe.exec_command:
            return self.run_in_container(probe.exec_command, probe.timeout) == 0
        if probe.http_get:
            host, port, path, scheme = probe.http_get
            url = f"{scheme}://{host}:{port}{path}"
            code = subprocess.run(
                ["ip", "netns", "exec", self.netns, "curl", "-sk", "-o", "/dev/null",
                 "-w", "%{http_code}", "--max-time", str(probe.timeout), url],
                capture_output=True, text=True, check=False).stdout.strip()
            return code.isdigit() and 200 <= int(code) < 400
        if probe.tcp_socket:
            host, port = probe.tcp_socket
            script = ("import socket,sys\n"
                      f"socket.create_connection(({host!r}, {port}), {probe.timeout}).close()")
            return subprocess.run(["ip", "netns", "exec", self.netns, sys.executable, "-c",
                                   script], capture_output=True, check=False).returncode == 0
        return True

    def _advance(self, state: ProbeState, now: float) -> None:
        if now < state.next_at:
            return
        ok = self._probe_once(state.probe)
        state.next_at = time.monotonic() + state.probe.period
        if ok:
            state.successes += 1
            state.failures = 0
            if state.successes >= state.probe.success_threshold:
                state.passing = True
        else:
            state.failures += 1
            state.successes = 0
            if state.failures >= state.probe.failure_threshold:
                state.passing = False

    def run_probes(self) -> bool:
        """Advance readiness and liveness probes that are due.

        Returns False when the liveness probe has failed its threshold (the caller
        restarts the container).
        """
        if not self.running():
            return True
        now = time.monotonic()
        if self.readiness:
            self._advance(self.readiness, now)
        if self.liveness:
            self._advance(self.liveness, now)
            if self.liveness.failures >= self.liveness.probe.failure_threshold:
                self.liveness.failures = 0
                return False
        return True

    def ready(self) -> bool:
        """Running, and its readiness probe (if any) passing."""
        if not self.running() or "running" not in self.state:
            return False
        return self.readiness.passing if self.readiness else True

    def status(self) -> dict[str, Any]:
        """This container's ``ContainerStatus``."""
        pid = self.pid
        st: dict[str, Any] = {
            "name": self.plan.name, "image": self.plan.image, "imageID": "",
            "ready": self.ready(), "restartCount": self.restart_count,
            "started": "running" in self.state, "state": self.state,
            "lastState": self.last_state,
        }
        if pid is not None:
            st["containerID"] = f"process://{pid}"
        return st
