"""The baseline for a notebook run: nbclient executing the notebook
directly, as a process of its own (bench/notebook.sh). Prints the
in-process execution time in ms (NotebookClient.execute, kernel start
included); the caller times the whole process."""
import sys
import time

import nbformat
from nbclient import NotebookClient

nb = nbformat.read(sys.argv[1], as_version=4)
t0 = time.monotonic()
NotebookClient(nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": sys.argv[2]}}).execute()
print("%.1f" % ((time.monotonic() - t0) * 1000))
