"""A Jupyter kernel provisioner for kernels on ferry hosts.

jupyter_client (>= 7) finds it through the entry point `ferry-provisioner`
in the group `jupyter_client.kernel_provisioners` (installed with this
package by `make install`). A kernel spec written by `ferry kernelspec
install NAME@VERSION --to SELECTOR` names it in its metadata:

    "metadata": {"kernel_provisioner": {"provisioner_name": "ferry-provisioner",
                 "config": {"ref": "lab@1.0", "to": "env=gpu", ...}}}

Every step goes through the ferry CLI, so signing and the sealed
connection info are the CLI's code (docs/notebooks.md, "Jupyter"):

    launch      ferry kernel start REF --to SELECTOR -o FILE  (FILE in a
                private temporary folder, read and removed at once)
    interrupt   ferry kernel interrupt ID   (kernel spec interrupt_mode signal)
    restart     ferry kernel restart ID     (same connection info)
    shutdown    ferry kernel stop ID

The kernel's process is on another host: poll() says it is alive until it
was stopped here, since the agent restarts a kernel that dies with the same
connection info.

This module imports jupyter_client; `import ferry` does not import it.
"""
import asyncio
import json
import os
import shutil
import signal
import tempfile

from jupyter_client.provisioning.provisioner_base import KernelProvisionerBase
from traitlets import Unicode

from ._cli import Error, binary


class FerryProvisioner(KernelProvisionerBase):
    """Starts, interrupts, restarts and stops a kernel on a ferry host."""

    ref = Unicode("", config=True, help="NAME@VERSION of the notebook workload")
    to = Unicode("", config=True, help="the host selector (K=V,...)")
    registry = Unicode("", config=True, help="--registry; empty: FERRY_REGISTRY")
    key = Unicode("", config=True, help="--key; empty: FERRY_KEY")
    idle = Unicode("", config=True, help="--idle; empty: the host's default (1h)")
    cli = Unicode("", config=True, help="the ferry CLI; empty: FERRY_CLI, PATH, the installed one")

    kid = None        # the ferry kernel id while one is ours
    _stopped = True   # no kernel, or it was stopped from here
    _exit = None      # what poll() answers once it was stopped
    _restarting = False  # a restart asked of the host; launch_kernel() reuses the kernel

    # --- running the CLI --------------------------------------------------

    def _cmd(self, args):
        cli = self.cli if self.cli and os.access(self.cli, os.X_OK) else binary()
        cmd = [cli] + list(args)
        if self.registry:
            cmd += ["--registry", self.registry]
        if self.key:
            cmd += ["--key", self.key]
        return cmd

    async def _ferry(self, *args):
        proc = await asyncio.create_subprocess_exec(
            *self._cmd(args), stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
        out, err = await proc.communicate()
        if proc.returncode != 0:
            lines = [l for l in err.decode(errors="replace").splitlines() if l.strip()]
            raise Error(lines[-1] if lines else "ferry %s exited %d" % (args[0], proc.returncode),
                        proc.returncode)
        return out.decode()

    # --- KernelProvisionerBase --------------------------------------------

    @property
    def has_process(self):
        return self.kid is not None

    async def poll(self):
        return None if self.kid is not None and not self._stopped else (self._exit or 0)

    async def wait(self):
        # Called once the kernel manager believes the kernel is gone (it
        # asked for a shutdown, and shutdown_requested() stopped it).
        while await self.poll() is None:
            await asyncio.sleep(0.1)
        return self._exit or 0

    async def send_signal(self, signum):
        if self.kid is None or signum == 0:
            return
        if signum == signal.SIGINT:
            await self._ferry("kernel", "interrupt", self.kid)
        elif signum in (signal.SIGTERM, signal.SIGKILL):
            await self._stop()

    async def kill(self, restart=False):
        if not restart:
            await self._stop()

    async def terminate(self, restart=False):
        if not restart:
            await self._stop()

    async def shutdown_requested(self, restart=False):
        # The manager sent shutdown_request on the control channel; the
        # kernel may exit on its own, and the agent would start it again.
        # So the host is told: a restart keeps the kernel (a fresh
        # interpreter behind the same connection info), a shutdown ends it.
        if self.kid is None:
            return
        if restart:
            await self._ferry("kernel", "restart", self.kid)
            self._stopped = True  # for the manager's wait(); launch_kernel() reuses it
            self._restarting = True
        else:
            await self._stop()

    async def pre_launch(self, **kwargs):
        if not self.ref or not self.to:
            raise Error("ferry-provisioner: the kernel spec's config needs ref and to "
                        "(write it with ferry kernelspec install)")
        kwargs.pop("extra_arguments", None)
        return await super().pre_launch(cmd=list(self.kernel_spec.argv), **kwargs)

    async def launch_kernel(self, cmd, **kwargs):
        if self.kid is not None and self._restarting:
            # A restart: the host already gave the kernel a fresh
            # interpreter behind the same connection info.
            self._restarting = False
            self._stopped = False
            return self.connection_info
        folder = tempfile.mkdtemp(prefix="ferry-conn-")
        try:
            path = os.path.join(folder, "conn.json")
            args = ["kernel", "start", self.ref, "--to", self.to, "-o", path]
            if self.idle:
                args += ["--idle", self.idle]
            out = await self._ferry(*args)
            with open(path) as f:
                info = json.load(f)
        finally:
            shutil.rmtree(folder, ignore_errors=True)
        self.kid = out.strip().splitlines()[-1].strip()
        self._stopped = False
        self._exit = None
        info["key"] = info["key"].encode()  # the manager compares and signs with bytes
        self.connection_info = info
        self.log.info("ferry kernel %s for %s on %s", self.kid, self.ref, self.to)
        return info

    async def cleanup(self, restart=False):
        if not restart:
            await self._stop()
            self.kid = None

    async def get_provisioner_info(self):
        info = await super().get_provisioner_info()
        info.update(ferry_kernel=self.kid, ref=self.ref, to=self.to)
        return info

    async def load_provisioner_info(self, provisioner_info):
        await super().load_provisioner_info(provisioner_info)
        self.kid = provisioner_info.get("ferry_kernel")
        self._stopped = self.kid is None

    # --- helpers -------------------------------------------------------------

    async def _stop(self):
        if self.kid is None or self._stopped:
            return
        try:
            await self._ferry("kernel", "stop", self.kid)
        except Error as e:
            # Already gone on the host (culled, undeployed): nothing to stop.
            if "no host runs such a kernel" not in e.message and "no such kernel" not in e.message:
                raise
        self._stopped = True
        self._exit = 0
