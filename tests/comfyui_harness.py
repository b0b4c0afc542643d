"""A real, headless ComfyUI server in a subprocess, for integration tests (stdlib only, no pytest).

    server = ComfyUIServer(comfyui_dir, python, base_dir, pack_dir)
    server.start()                       # waits until /object_info answers
    pid = server.post_prompt(api_graph)  # POST /prompt; PromptRejected on validation errors
    entry = server.wait_history(pid, timeout=120)
    server.stop()

The server runs ``main.py --cpu --listen 127.0.0.1 --port <free> --disable-auto-launch
--base-directory <base_dir> --database-url sqlite:///:memory:``. ``base_dir`` gets ``custom_nodes/<pack>``
(a symlink to the pack), ``models/checkpoints``, ``input`` and ``output``; ComfyUI needs
``custom_nodes`` to exist before it starts. stdout and stderr go to ``base_dir/comfyui.log``.

A pack that fails to import does not stop ComfyUI (and ``--quick-test-for-ci`` still exits 0), so
``import_failures()`` and ``pack_tracebacks()`` read the log for ``IMPORT FAILED`` lines and for
tracebacks that mention the pack.
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from pathlib import Path
from typing import Any

__all__ = [
    "ComfyUIServer",
    "ComfyUIError",
    "EventStream",
    "PromptRejected",
    "find_comfyui",
    "free_port",
    "history_status",
]

MIN_COMFYUI_VERSION = (0, 3, 64)


class ComfyUIError(RuntimeError):
    """The server did not start, died, or did not answer in time. The message ends with the log tail."""


class PromptRejected(ComfyUIError):
    """``POST /prompt`` answered 400: the graph did not validate. ``.body`` holds ComfyUI's JSON."""

    def __init__(self, message: str, body: dict[str, Any]):
        super().__init__(message)
        self.body = body


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _parse_version(text: str) -> tuple[int, ...] | None:
    m = re.search(r"__version__\s*=\s*['\"](\d+)\.(\d+)\.(\d+)", text)
    return tuple(int(x) for x in m.groups()) if m else None


def find_comfyui(environ: dict[str, str] | None = None) -> tuple[Path, Path] | str:
    """``(COMFYUI_DIR, COMFYUI_PYTHON)`` from the environment, or a string saying why not usable."""
    env = os.environ if environ is None else environ
    d, py = env.get("COMFYUI_DIR"), env.get("COMFYUI_PYTHON")
    if not d or not py:
        return "COMFYUI_DIR and/or COMFYUI_PYTHON are not set"
    d_path, py_path = Path(d), Path(py)
    if not (d_path / "main.py").is_file() or not (d_path / "comfy").is_dir():
        return f"COMFYUI_DIR={d} is not a ComfyUI checkout (no main.py / comfy/)"
    if not py_path.is_file() or not os.access(py_path, os.X_OK):
        return f"COMFYUI_PYTHON={py} is not an executable file"
    version_file = d_path / "comfyui_version.py"
    version = _parse_version(version_file.read_text()) if version_file.is_file() else None
    if version is None:
        return f"cannot read the ComfyUI version from {version_file}"
    if version < MIN_COMFYUI_VERSION:
        return f"ComfyUI {'.'.join(map(str, version))} is older than 0.3.64"
    return d_path, py_path


def history_status(entry: dict[str, Any]) -> tuple[str | None, list[str]]:
    """``(status_str, [message event names])`` of a ``/history`` entry (``"success"``/``"error"``)."""
    status = entry.get("status") or {}
    events = [m[0] for m in status.get("messages", []) if isinstance(m, (list, tuple)) and m]
    return status.get("status_str"), events


class EventStream:
    """A minimal websocket client for ComfyUI's ``/ws`` (stdlib only; JSON text frames are kept).

    ComfyUI sends a prompt's ``progress`` / ``executing`` / ``executed`` / ``execution_*`` messages to the
    websocket whose ``clientId`` was given with the prompt, so open the stream with the server's
    ``client_id`` *before* posting. Binary frames (previews) are skipped.
    """

    def __init__(self, host: str, port: int, client_id: str, timeout: float = 10.0):
        import base64
        import threading

        self.messages: list[dict[str, Any]] = []
        self._cond = threading.Condition()
        self._closed = False
        self._sock = socket.create_connection((host, port), timeout=timeout)
        key = base64.b64encode(os.urandom(16)).decode()
        self._sock.sendall(
            (f"GET /ws?clientId={client_id} HTTP/1.1\r\nHost: {host}:{port}\r\nUpgrade: websocket\r\n"
             f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n").encode())
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = self._sock.recv(4096)
            if not chunk:
                raise ComfyUIError("websocket handshake: connection closed")
            head += chunk
        head, self._buf = head.split(b"\r\n\r\n", 1)
        if b" 101 " not in head.split(b"\r\n", 1)[0]:
            raise ComfyUIError(f"websocket handshake refused: {head[:200]!r}")
        self._sock.settimeout(None)
        self._thread = threading.Thread(target=self._reader, name="comfyui-ws", daemon=True)
        self._thread.start()

    def _recv_exact(self, n: int) -> bytes:
        while len(self._buf) < n:
            chunk = self._sock.recv(65536)
            if not chunk:
                raise ConnectionError("websocket closed")
            self._buf += chunk
        out, self._buf = self._buf[:n], self._buf[n:]
        return out

    def _send(self, opcode: int, payload: bytes = b"") -> None:
        # client frames must be masked (RFC 6455 5.3); payloads here are tiny (pong / close)
        mask = os.urandom(4)
        header = bytes([0x80 | opcode, 0x80 | len(payload)]) + mask
        self._sock.sendall(header + bytes(b ^ mask[i % 4] for i, b in enumerate(payload)))

    def _reader(self) -> None:
        fragments: list[bytes] = []
        message_opcode = 0x1
        try:
            while True:
                b0, b1 = self._recv_exact(2)
                fin, opcode, length = b0 & 0x80, b0 & 0x0F, b1 & 0x7F
                if length == 126:
                    length = int.from_bytes(self._recv_exact(2), "big")
                elif length == 127:
                    length = int.from_bytes(self._recv_exact(8), "big")
                mask = self._recv_exact(4) if b1 & 0x80 else None
                payload = self._recv_exact(length)
                if mask:
                    payload = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
                if opcode == 0x8:  # close
                    break
                if opcode == 0x9:  # ping
                    self._send(0xA, payload)
                    continue
                if opcode in (0x1, 0x2):
                    message_opcode = opcode
                if opcode in (0x0, 0x1, 0x2):
                    fragments.append(payload)
                    if not fin:
                        continue
                    data, fragments = b"".join(fragments), []
                    if message_opcode != 0x1:
                        continue  # binary (preview images)
                    try:
                        msg = json.loads(data)
                    except ValueError:
                        continue
                    with self._cond:
                        self.messages.append(msg)
                        self._cond.notify_all()
        except (OSError, ConnectionError, ValueError):
            pass
        finally:
            with self._cond:
                self._closed = True
                self._cond.notify_all()

    def wait_for(self, predicate, timeout: float = 60.0) -> dict[str, Any]:
        """The first message (old or new) for which ``predicate(msg)`` is true; ``ComfyUIError`` on timeout."""
        deadline = time.monotonic() + timeout
        seen = 0
        with self._cond:
            while True:
                for msg in self.messages[seen:]:
                    if predicate(msg):
                        return msg
                seen = len(self.messages)
                left = deadline - time.monotonic()
                if left <= 0 or self._closed:
                    types = [m.get("type") for m in self.messages[-20:]]
                    raise ComfyUIError(f"no matching websocket message within {timeout:.0f} s "
                                       f"(closed={self._closed}; last types: {types})")
                self._cond.wait(left)

    def of_type(self, msg_type: str, prompt_id: str | None = None) -> list[dict[str, Any]]:
        """The ``data`` of every message of this type so far (for this prompt, if given)."""
        with self._cond:
            return [m.get("data", {}) for m in self.messages if m.get("type") == msg_type
                    and (prompt_id is None or m.get("data", {}).get("prompt_id") == prompt_id)]

    def close(self) -> None:
        try:
            self._send(0x8)
        except OSError:
            pass
        try:
            self._sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self._sock.close()
        self._thread.join(5)

    def __enter__(self) -> EventStream:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class ComfyUIServer:
    """One ComfyUI process. Use as a context manager or call ``start()``/``stop()``."""

    def __init__(self, comfyui_dir: str | Path, python: str | Path, base_dir: str | Path,
                 pack_dir: str | Path | None = None, pack_name: str = "ComfyUI-MVG",
                 port: int | None = None, extra_args: tuple[str, ...] = (), env: dict[str, str] | None = None,
                 threads: int | None = 1):
        self.comfyui_dir = Path(comfyui_dir)
        self.python = Path(python)
        self.base_dir = Path(base_dir)
        self.pack_dir = Path(pack_dir).resolve() if pack_dir is not None else None
        self.pack_name = pack_name
        self.port = port or free_port()
        self.extra_args = tuple(extra_args)
        self.env = env
        # CPU threads for ComfyUI's torch (None: torch's default, one per core). The test graphs are tiny
        # (64 px), so threads barely help, while oversubscribing a small shared machine (2 cores, another
        # torch process busy) made every prompt ~5x slower in measurements.
        self.threads = threads
        self.log_path = self.base_dir / "comfyui.log"
        self.proc: subprocess.Popen | None = None
        self.client_id = uuid.uuid4().hex
        self._log_file = None

    # ------------------------------------------------------------------ layout
    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def custom_nodes_dir(self) -> Path:
        return self.base_dir / "custom_nodes"

    @property
    def checkpoints_dir(self) -> Path:
        return self.base_dir / "models" / "checkpoints"

    @property
    def input_dir(self) -> Path:
        return self.base_dir / "input"

    @property
    def output_dir(self) -> Path:
        return self.base_dir / "output"

    def prepare(self) -> None:
        """Create the base directory layout and link the pack (idempotent)."""
        for d in (self.custom_nodes_dir, self.checkpoints_dir, self.input_dir, self.output_dir):
            d.mkdir(parents=True, exist_ok=True)
        if self.pack_dir is not None:
            link = self.custom_nodes_dir / self.pack_name
            if link.is_symlink() or link.exists():
                if link.resolve() != self.pack_dir:
                    raise ComfyUIError(f"{link} exists and does not point to {self.pack_dir}")
            else:
                link.symlink_to(self.pack_dir, target_is_directory=True)

    # ------------------------------------------------------------------ process
    def command(self) -> list[str]:
        return [str(self.python), str(self.comfyui_dir / "main.py"), "--cpu", "--listen", "127.0.0.1",
                "--port", str(self.port), "--disable-auto-launch", "--base-directory", str(self.base_dir),
                "--database-url", "sqlite:///:memory:", *self.extra_args]

    def start(self, timeout: float = 180.0, port_retries: int = 2, while_booting=None) -> ComfyUIServer:
        """Start the process and wait until ``/object_info`` answers. Raises ``ComfyUIError``.

        ``while_booting()``, if given, runs once right after the launch, while ComfyUI imports (about
        15 s): e.g. write the checkpoint (atomically; ComfyUI lists model folders per request). If the
        port was taken in the meantime (``free_port`` cannot reserve it), retry on a new one.
        """
        for attempt in range(port_retries + 1):
            self.launch()
            if while_booting is not None:
                try:
                    while_booting()
                except BaseException:
                    self.stop()
                    raise
                while_booting = None
            try:
                return self.wait_ready(timeout)
            except ComfyUIError as e:
                if attempt == port_retries or "address already in use" not in str(e).lower():
                    raise
                self.port = free_port()
        raise AssertionError("unreachable")

    def launch(self) -> None:
        """Start the process without waiting (see ``wait_ready``)."""
        if self.proc is not None:
            raise ComfyUIError("already started")
        self.prepare()
        env = dict(os.environ if self.env is None else self.env)
        env["PYTHONUNBUFFERED"] = "1"
        env.setdefault("HF_HUB_OFFLINE", "1")
        env.pop("PYTHONPATH", None)  # the test process's paths must not leak into ComfyUI's venv
        if self.threads:
            env["OMP_NUM_THREADS"] = env["MKL_NUM_THREADS"] = str(self.threads)
        self._log_file = open(self.log_path, "ab")
        self.proc = subprocess.Popen(
            self.command(), cwd=str(self.base_dir), env=env, stdin=subprocess.DEVNULL,
            stdout=self._log_file, stderr=subprocess.STDOUT, start_new_session=True)

    def wait_ready(self, timeout: float = 180.0) -> ComfyUIServer:
        """Wait until ``/object_info`` lists the core nodes; ``ComfyUIError`` if the process dies or times out."""
        if self.proc is None:
            raise ComfyUIError("not launched")
        deadline = time.monotonic() + timeout
        last_error: Exception | None = None
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                code = self.proc.returncode
                self.proc = None
                self._close_log()
                raise ComfyUIError(f"ComfyUI exited with code {code} during start-up\n{self.log_tail()}")
            try:
                info = self.get_json("/object_info", timeout=30)
                if isinstance(info, dict) and "CheckpointLoaderSimple" in info:
                    return self
            except (urllib.error.URLError, ConnectionError, OSError, ValueError) as e:
                last_error = e
            time.sleep(0.5)
        self.stop()
        raise ComfyUIError(f"ComfyUI did not answer /object_info within {timeout:.0f} s ({last_error})\n"
                           f"{self.log_tail()}")

    def stop(self, timeout: float = 20.0) -> int | None:
        """SIGINT (ComfyUI's clean exit), then SIGTERM, then SIGKILL. Returns the exit code."""
        proc, self.proc = self.proc, None
        if proc is None:
            return None
        if proc.poll() is None:
            for sig, wait in ((signal.SIGINT, timeout), (signal.SIGTERM, 5.0), (signal.SIGKILL, 5.0)):
                try:
                    proc.send_signal(sig)
                except ProcessLookupError:
                    break
                try:
                    proc.wait(wait)
                    break
                except subprocess.TimeoutExpired:
                    continue
        self._close_log()
        return proc.returncode

    def _close_log(self) -> None:
        if self._log_file is not None:
            self._log_file.close()
            self._log_file = None

    def is_running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def __enter__(self) -> ComfyUIServer:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    # ------------------------------------------------------------------ log
    def log_text(self) -> str:
        if self._log_file is not None:
            self._log_file.flush()
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def log_tail(self, lines: int = 60) -> str:
        return "--- ComfyUI log tail ---\n" + "\n".join(self.log_text().splitlines()[-lines:])

    def import_failures(self, only_pack: bool = True) -> list[str]:
        """``IMPORT FAILED`` lines of the log (only those naming the pack, unless ``only_pack=False``).

        Custom node packs are reported as ``  0.1 seconds (IMPORT FAILED): <path>``; core extras that
        miss an optional dependency (e.g. torchaudio) as ``IMPORT FAILED: nodes_audio.py``.
        """
        out = []
        for line in self.log_text().splitlines():
            if "IMPORT FAILED" in line and (not only_pack or self.pack_name in line):
                out.append(line.strip())
        return out

    def pack_tracebacks(self, needles: tuple[str, ...] | None = None) -> list[str]:
        """Traceback blocks in the log that mention the pack (its link name or its real path)."""
        if needles is None:
            needles = tuple(n for n in (self.pack_name, str(self.pack_dir) if self.pack_dir else None) if n)
        blocks, current = [], None
        for line in self.log_text().splitlines():
            if line.startswith("Traceback (most recent call last)"):
                if current:
                    blocks.append(current)
                current = [line]
            elif current is not None:
                current.append(line)
                # a traceback ends at its first non-indented line after the frames (the exception)
                if line and not line.startswith((" ", "\t")) and len(current) > 1:
                    blocks.append(current)
                    current = None
        if current:
            blocks.append(current)
        return ["\n".join(b) for b in blocks if any(n in "\n".join(b) for n in needles)]

    # ------------------------------------------------------------------ HTTP
    def _request(self, method: str, path: str, body: Any = None, timeout: float = 30.0):
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.url + path, data=data, method=method,
                                     headers={"Content-Type": "application/json"} if data is not None else {})
        with urllib.request.urlopen(req, timeout=timeout) as r:
            raw = r.read()
        return json.loads(raw) if raw.strip() else None

    def events(self) -> EventStream:
        """Open a websocket as this harness's ``client_id`` (``post_prompt`` sends prompts as it)."""
        return EventStream("127.0.0.1", self.port, self.client_id)

    def get_json(self, path: str, timeout: float = 30.0):
        return self._request("GET", path, timeout=timeout)

    def object_info(self, node_class: str | None = None) -> dict[str, Any]:
        """``/object_info`` (all nodes) or ``/object_info/<node_class>``'s entry for that node."""
        if node_class is None:
            return self.get_json("/object_info")
        info = self.get_json("/object_info/" + urllib.parse.quote(node_class))
        return info.get(node_class, {}) if isinstance(info, dict) else {}

    def post_prompt(self, api_graph: dict[str, Any], workflow: dict[str, Any] | None = None) -> str:
        """Queue an API-format graph (with the UI ``workflow`` in ``extra_pnginfo``, as the frontend sends it);
        return its ``prompt_id``. ``PromptRejected`` when it does not validate."""
        body: dict[str, Any] = {"prompt": api_graph, "client_id": self.client_id}
        if workflow is not None:
            body["extra_data"] = {"extra_pnginfo": {"workflow": workflow}}
        try:
            answer = self._request("POST", "/prompt", body)
        except urllib.error.HTTPError as e:
            raw = e.read().decode(errors="replace")
            try:
                parsed = json.loads(raw)
            except ValueError:
                parsed = {"raw": raw}
            raise PromptRejected(f"POST /prompt -> {e.code}: {json.dumps(parsed, indent=1)[:4000]}", parsed) from None
        if answer.get("node_errors"):
            raise PromptRejected(f"node errors: {answer['node_errors']}", answer)
        return answer["prompt_id"]

    def history(self, prompt_id: str) -> dict[str, Any] | None:
        return (self.get_json(f"/history/{prompt_id}") or {}).get(prompt_id)

    def queue(self) -> dict[str, Any]:
        return self.get_json("/queue")

    def interrupt(self, prompt_id: str | None = None) -> None:
        """``POST /interrupt`` (for a given prompt only, when ``prompt_id`` is given)."""
        self._request("POST", "/interrupt", {"prompt_id": prompt_id} if prompt_id else {})

    def wait_history(self, prompt_id: str, timeout: float = 120.0, poll: float = 0.2) -> dict[str, Any]:
        """Wait until ``/history/<id>`` has the finished entry (success or error) and return it."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            entry = self.history(prompt_id)
            if entry is not None and (entry.get("status") or {}).get("status_str") is not None:
                return entry
            if not self.is_running():
                raise ComfyUIError(f"ComfyUI died while running {prompt_id}\n{self.log_tail()}")
            time.sleep(poll)
        raise ComfyUIError(f"prompt {prompt_id} not finished after {timeout:.0f} s\n{self.log_tail()}")

    def wait_running(self, prompt_id: str, timeout: float = 60.0, poll: float = 0.05) -> None:
        """Wait until the prompt is the one executing (in ``/queue``'s ``queue_running``)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            running = self.queue().get("queue_running", [])
            if any(len(item) > 1 and item[1] == prompt_id for item in running):
                return
            if self.history(prompt_id) is not None:
                raise ComfyUIError(f"prompt {prompt_id} finished before it was seen running")
            time.sleep(poll)
        raise ComfyUIError(f"prompt {prompt_id} did not start within {timeout:.0f} s\n{self.log_tail()}")

    def run(self, api_graph: dict[str, Any], timeout: float = 120.0) -> dict[str, Any]:
        """``post_prompt`` + ``wait_history``; raises ``ComfyUIError`` with the node error unless success."""
        prompt_id = self.post_prompt(api_graph)
        entry = self.wait_history(prompt_id, timeout)
        status, _ = history_status(entry)
        if status != "success":
            raise ComfyUIError(f"prompt {prompt_id} ended with {status}: "
                               f"{json.dumps(entry.get('status'), indent=1)[:6000]}\n{self.log_tail()}")
        entry["prompt_id"] = prompt_id
        return entry

    def output_images(self, entry: dict[str, Any], node_id: str) -> list[Path]:
        """Paths of the images a SaveImage/PreviewImage node wrote, in order."""
        out = []
        for img in entry.get("outputs", {}).get(node_id, {}).get("images", []):
            root = self.output_dir if img.get("type", "output") == "output" else self.base_dir / img["type"]
            out.append(root / img.get("subfolder", "") / img["filename"])
        return out


if __name__ == "__main__":  # manual smoke run: python tests/comfyui_harness.py <base_dir>
    found = find_comfyui()
    if isinstance(found, str):
        sys.exit(found)
    base = Path(sys.argv[1] if len(sys.argv) > 1 else "/tmp/mvg_comfyui_smoke")
    with ComfyUIServer(*found, base, Path(__file__).resolve().parents[1]) as srv:
        print(srv.url, len(srv.object_info()), "nodes;", srv.import_failures(only_pack=False))
