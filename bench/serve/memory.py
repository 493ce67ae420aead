"""Peak memory of `sluice serve` for request bodies at the body limit (run by
bench/serve/run.sh, not a test).

    python memory.py SLUICE HOME PORT

Starts `sluice serve` on the home (which must hold the example's breast-cancer model),
builds a TF Serving row-format body and an OIP tensor body of the example's feature rows,
each as large as the default 16 MiB body limit allows, and sends each once alone and then
four at once. Peak resident memory is read from /proc (VmHWM, reset before each step
through clear_refs, so it is the peak of that step alone); the baseline, measured in the
same run, is the server's resident memory before the step, and the figures are the
growth over it per body, as a multiple of the body's size. Last, the resident memory a few
seconds after the burst shows whether the memory was given back.
"""

import csv
import json
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request

LIMIT = 16 << 20
MIB = 1 << 20


def bodies():
    with open("examples/breast-cancer/data/breast_cancer.csv") as f:
        rows = [[float(x) for x in r[:30]] for r in list(csv.reader(f))[1:]]
    per_row = len(json.dumps(rows[0])) + 2
    n = (LIMIT - 200) // per_row
    while True:
        chosen = [rows[i % len(rows)] for i in range(n)]
        tfs = json.dumps({"instances": chosen}).encode()
        flat = [x for r in chosen for x in r]
        oip = json.dumps(
            {"inputs": [{"name": "features", "shape": [n, 30], "datatype": "FP64", "data": flat}]}
        ).encode()
        if len(tfs) <= LIMIT and len(oip) <= LIMIT:
            return n, tfs, oip
        n -= 200


def dense():
    """An OIP body of zeros at the limit: the most elements a body can carry, so the
    largest tensors for its size (8 bytes for every 2 of body)."""
    n = (LIMIT - 200) // 2 // 30
    flat = ",".join(["0"] * (n * 30))
    body = ('{"inputs": [{"name": "features", "shape": [%d, 30], "datatype": "FP64", "data": [%s]}]}' % (n, flat)).encode()
    assert len(body) <= LIMIT
    return n, body


def main():
    sluice, home, port = sys.argv[1], sys.argv[2], int(sys.argv[3])
    server = subprocess.Popen(
        [sluice, "serve", "--bind", f"127.0.0.1:{port}"],
        env=dict(os.environ, SLUICE_HOME=home),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        for _ in range(300):
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/v2/health/ready")
                break
            except OSError:
                time.sleep(0.1)

        def status(key):
            with open(f"/proc/{server.pid}/status") as f:
                for line in f:
                    if line.startswith(key):
                        return int(line.split()[1]) * 1024
            raise RuntimeError(key)

        def reset_peak():
            with open(f"/proc/{server.pid}/clear_refs", "w") as f:
                f.write("5")

        refused = []

        def send(url, body):
            """Sends a body; a 503 (the body budget full past the body timeout) or a
            connection the server closed on it is counted, not an error."""
            request = urllib.request.Request(url, data=body, headers={"Content-Type": "application/json"})
            try:
                with urllib.request.urlopen(request, timeout=300) as answer:
                    answer.read()
                    assert answer.status == 200, answer.status
            except urllib.error.HTTPError as e:
                assert e.code == 503, e.code
                refused.append(e.code)
            except urllib.error.URLError:
                refused.append("closed")

        rows, tfs, oip = bodies()
        dense_rows, zeros = dense()
        base = f"http://127.0.0.1:{port}"
        print(f"bodies of {rows} rows: TF Serving rows {len(tfs) / MIB:.1f} MiB, OIP tensor {len(oip) / MIB:.1f} MiB;")
        print(f"OIP zeros: {dense_rows} rows of zeros in {len(zeros) / MIB:.1f} MiB")
        print(f"\n{'request':<22} {'before':>8} {'peak, 1':>9} {'per body':>9} {'peak, 4':>9} {'per body':>9} {'3 s after':>10} {'refused':>8}")
        for name, url, body in [
            ("TF Serving rows", f"{base}/v1/models/breast-cancer:predict", tfs),
            ("OIP tensor", f"{base}/v2/models/breast-cancer/infer", oip),
            ("OIP zeros", f"{base}/v2/models/breast-cancer/infer", zeros),
        ]:
            before = status("VmRSS")
            reset_peak()
            send(url, body)
            one = status("VmHWM")
            time.sleep(1)
            before4 = status("VmRSS")
            refused.clear()
            reset_peak()
            threads = [threading.Thread(target=send, args=(url, body)) for _ in range(4)]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            four = status("VmHWM")
            time.sleep(3)
            after = status("VmRSS")
            print(
                f"{name:<22} {before / MIB:>6.0f} M {one / MIB:>7.0f} M {(one - before) / len(body):>8.1f}x"
                f" {four / MIB:>7.0f} M {(four - before4) / len(body) / 4:>8.1f}x {after / MIB:>8.0f} M"
                f" {len(refused):>8}"
            )
        print("\n(per body: peak growth over the resident memory before, as a multiple of the body's size;")
        print(" refused: of the four at once, answered 503 because the body budget stayed full)")
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait()


if __name__ == "__main__":
    main()
