"""Kernel start to first execute_reply, remote through ferry against local
through jupyter_client, interleaved (bench/notebook.sh).

    kernels.py FERRY REF SELECTOR ROUNDS WORKDIR

Remote: `ferry kernel start REF --to SELECTOR -o conn.json` (sign, registry,
agent, ipykernel spawn, sealed answer), then a BlockingKernelClient from
conn.json until the reply to `1+1`. Local: KernelManager.start_kernel()
of the python3 kernel, then its client until the same reply. Each kernel
is stopped outside the timed part. Prints one line per sample:
`remote MS`, `cli MS` (of it, until `ferry kernel start` returned: the
kernel accepts connections by then) and `local MS`."""
import os
import subprocess
import sys
import time

from jupyter_client import BlockingKernelClient, KernelManager

ferry, ref, selector, rounds, workdir = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), sys.argv[5]


def first_reply(kc):
    # wait_for_ready sends kernel_info until the kernel answers; then the
    # first execute_request and its execute_reply.
    kc.wait_for_ready(timeout=60)
    reply = kc.execute("1+1", reply=True, timeout=60)
    assert reply["content"]["status"] == "ok", reply["content"]


def remote():
    conn = os.path.join(workdir, "conn.json")
    t0 = time.monotonic()
    kid = subprocess.run([ferry, "kernel", "start", ref, "--to", selector, "-o", conn],
                         check=True, capture_output=True, text=True).stdout.strip()
    cli_ms = (time.monotonic() - t0) * 1000
    kc = BlockingKernelClient()
    kc.load_connection_file(conn)
    kc.start_channels()
    first_reply(kc)
    ms = (time.monotonic() - t0) * 1000
    kc.stop_channels()
    subprocess.run([ferry, "kernel", "stop", kid], check=True, capture_output=True)
    os.unlink(conn)
    return ms, cli_ms


def local():
    t0 = time.monotonic()
    km = KernelManager(kernel_name="python3")
    km.start_kernel(cwd=workdir)
    kc = km.client()
    kc.start_channels()
    first_reply(kc)
    ms = (time.monotonic() - t0) * 1000
    kc.stop_channels()
    km.shutdown_kernel(now=True)
    return ms


for _ in range(rounds):
    ms, cli_ms = remote()
    print("remote %.1f" % ms, flush=True)
    print("cli %.1f" % cli_ms, flush=True)
    print("local %.1f" % local(), flush=True)
