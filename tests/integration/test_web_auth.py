"""The dashboard's door (issue 11): `floodshare web` needs its token on every request, on
loopback too, keeps it in a 0600 file of the run folder, and never lets the page change what a
peer shares or whom it talks to. Each test here fails when its defence is taken out."""

import json
import os
import pwd
import re
import shutil
import signal
import socket
import stat
import subprocess
import unittest
from pathlib import Path

from fsnet import BIN
from test_web import Web, WebCase, free_port

CARRIERS = ("bearer", "header", "cookie", "query")


def with_token(w: Web, path: str, carrier: str, token: str) -> tuple[str, str]:
    """(path, extra header lines) that carry token the given way."""
    if carrier == "bearer":
        return path, f"Authorization: Bearer {token}\r\n"
    if carrier == "header":
        return path, f"X-Floodshare-Token: {token}\r\n"
    if carrier == "cookie":
        return path, f"Cookie: theme=dark; floodshare_web_{w.port}={token}\r\n"
    return path + ("&" if "?" in path else "?") + f"token={token}", ""


def exchange(w: Web, method: str, path: str, extra: str = "", body: bytes = b"",
             timeout: float = 10) -> tuple[int, dict[str, str], bytes]:
    """One request over a raw socket: (status, headers with lower-case names, body so far).
    An event stream never ends, so its body is whatever came with the head."""
    head = (f"{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{w.port}\r\n{extra}"
            + (f"X-Floodshare: 1\r\nContent-Length: {len(body)}\r\n" if method == "POST" else "")
            + "\r\n").encode()
    with socket.create_connection(("127.0.0.1", w.port), timeout=timeout) as s:
        s.sendall(head + body)
        out = b""
        while b"\r\n\r\n" not in out:
            chunk = s.recv(65536)
            if not chunk:
                break
            out += chunk
        top, _, rest = out.partition(b"\r\n\r\n")
        lines = top.decode().split("\r\n")
        headers = {}
        for line in lines[1:]:
            k, _, v = line.partition(":")
            headers[k.strip().lower()] = v.strip()
        if not headers.get("content-type", "").startswith("text/event-stream"):
            while chunk := s.recv(65536):
                rest += chunk
    return int(lines[0].split()[1]), headers, rest


# What must never reach someone without the token: the page, the peers, the events.
SECRETS = (b"<html", b"<script", b"EventSource", b"run_dir", b"share_dir", b"\"peers\"",
           b"floodshare events", b"data: ")


class WebAuthTest(WebCase):
    def ini_bytes(self, net) -> dict[int, bytes]:
        return {p: (net.dir / f"peer-{p}.ini").read_bytes() for p in net.peers}

    def assert_refused(self, st, headers, body, what):
        self.assertEqual(st, 401, f"{what}: {body[:300]!r}")
        self.assertEqual(headers.get("www-authenticate"), 'Bearer realm="floodshare web"', what)
        self.assertTrue(headers.get("content-type", "").startswith("text/plain"), what)
        self.assertNotIn("set-cookie", headers, what)
        for s in SECRETS:
            self.assertNotIn(s, body, what)
        self.assertIn(b"needs its token", body, what)

    def test_without_the_token_every_path_answers_401_and_nothing_else(self):
        net = self.net("ring:3")
        w = self.web(net)
        before = self.ini_bytes(net)
        t = w.token
        flip = "0" if t[31] != "0" else "1"
        wrong = {
            "none": None,
            "empty": "",
            "another token": "f" * 64 if t != "f" * 64 else "e" * 64,
            "one byte changed": t[:31] + flip + t[32:],
            "last byte changed": t[:63] + ("0" if t[63] != "0" else "1"),
            "upper case": t.upper() if t.upper() != t else t[:63] + "g",
            "a prefix": t[:32],
            "all but the last byte": t[:63],
        }
        requests = [("GET", p) for p in ("/", "/index.html", "/app.js", "/app.css", "/api/peers",
                                         "/events", "/events?since=0", "/nope")]
        requests.append(("POST", "/api/cmd"))
        n = 0
        for method, path in requests:
            for name, token in wrong.items():
                for carrier in CARRIERS if token is not None else ("none",):
                    p, extra = (path, "") if token is None else with_token(w, path, carrier, token)
                    st, h, body = exchange(w, method, p, extra,
                                           b"peer 1 modify share_dir /etc" if method == "POST"
                                           else b"")
                    self.assert_refused(st, h, body, f"{method} {p} {extra!r} ({name}, {carrier})")
                    n += 1
        # the right token under another dashboard's cookie name is no token for this one
        st, h, body = exchange(w, "GET", "/api/peers", f"Cookie: floodshare_web_1={t}\r\n")
        self.assert_refused(st, h, body, "another port's cookie")
        self.assertGreater(n, 250)
        self.assertEqual(self.ini_bytes(net), before)
        cfg = json.loads(net.peer(1, "config", "--json").stdout)
        self.assertEqual(cfg["share_dir"], str(net.share(1)))
        self.assertFalse(cfg["paused"])

    def test_with_the_token_the_page_the_peers_the_events_and_commands_work(self):
        net = self.net("ring:3")
        w = self.web(net)
        for carrier in CARRIERS:
            p, extra = with_token(w, "/app.js", carrier, w.token)
            st, h, body = exchange(w, "GET", p, extra)
            self.assertEqual((st, h["content-type"].split(";")[0]), (200, "text/javascript"),
                             carrier)
            p, extra = with_token(w, "/api/peers", carrier, w.token)
            st, _, body = exchange(w, "GET", p, extra)
            self.assertEqual(st, 200, carrier)
            self.assertEqual([q["id"] for q in json.loads(body)["peers"]], [1, 2, 3], carrier)
            p, extra = with_token(w, "/events", carrier, w.token)
            st, h, body = exchange(w, "GET", p, extra)
            self.assertEqual((st, h["content-type"]), (200, "text/event-stream"), carrier)
            p, extra = with_token(w, "/api/cmd", carrier, w.token)
            st, _, body = exchange(w, "POST", p, extra, b"peer 2 stats --json")
            self.assertEqual((st, json.loads(body)["exit"]), (200, 0), carrier)
            # the page itself, except from the login URL, which sets the cookie (next test)
            if carrier != "query":
                p, extra = with_token(w, "/", carrier, w.token)
                st, _, body = exchange(w, "GET", p, extra)
                self.assertEqual(st, 200, carrier)
                self.assertIn(b'<script src="app.js">', body)
        # a decoy cookie of the same name (another server on 127.0.0.1 can set one for a
        # narrower Path, and the browser sends it first) does not lock the teacher out
        st, _, _ = exchange(w, "GET", "/api/peers",
                            f"Cookie: floodshare_web_{w.port}=decoy; "
                            f"floodshare_web_{w.port}={w.token}\r\n")
        self.assertEqual(st, 200)

    def test_the_printed_url_sets_an_httponly_strict_cookie_and_drops_the_token(self):
        net = self.net("ring:3")
        w = self.web(net)
        self.assertEqual(w.first.strip(),
                         f"floodshare web: dashboard of {net.dir} at {w.base}/?token={w.token}")
        cookie = f"floodshare_web_{w.port}={w.token}; Path=/; HttpOnly; SameSite=Strict"
        for path, there in [(f"/?token={w.token}", "/"),
                            (f"/?token={w.token}&speed=4", "/?speed=4"),
                            (f"/?speed=4&token={w.token}&x=1", "/?speed=4&x=1"),
                            (f"/index.html?token={w.token}", "/index.html")]:
            st, h, body = exchange(w, "GET", path)
            self.assertEqual((st, h.get("location"), h.get("set-cookie")), (303, there, cookie),
                             path)
            self.assertEqual(body, b"")
        # what the browser then asks, with the cookie it got
        st, h, body = exchange(w, "GET", "/?speed=4", f"Cookie: {cookie.split(';')[0]}\r\n")
        self.assertEqual(st, 200)
        self.assertNotIn("set-cookie", h)
        self.assertIn(b'<script src="app.js">', body)
        # a wrong token in the URL sets nothing
        st, h, body = exchange(w, "GET", f"/?token={'0' * 64}&speed=4")
        self.assert_refused(st, h, body, "wrong token in the URL")

    def test_the_token_file_is_0600_even_under_umask_0_and_goes_with_the_server(self):
        net = self.net("ring:3")
        # umask 0: a file created with default modes would be world-readable
        w = self.web(net, preexec_fn=lambda: os.umask(0))
        f = w.token_file
        self.assertIn(f"also in {f}, mode 0600", w.second)
        st = f.lstat()
        self.assertTrue(stat.S_ISREG(st.st_mode))
        self.assertEqual(stat.S_IMODE(st.st_mode), 0o600, oct(st.st_mode))
        self.assertEqual(st.st_uid, os.getuid())
        self.assertEqual(f.read_text(), w.token + "\n")
        self.assertEqual(sorted(p.name for p in net.dir.iterdir() if "web-" in p.name),
                         [f.name])  # no temporary name left behind
        # a second dashboard of the same run folder: its own file and token; neither opens
        # the other's door
        w2 = self.web(net)
        self.assertNotEqual(w2.token, w.token)
        self.assertEqual(w2.token_file.read_text(), w2.token + "\n")
        self.assertEqual(w.request("/api/peers", headers={"Authorization": f"Bearer {w2.token}"})[0],
                         401)
        self.assertEqual(w2.request("/api/peers", headers={"Authorization": f"Bearer {w.token}"})[0],
                         401)
        self.assertEqual(w2.request("/api/peers")[0], 200)
        w2.stop()
        self.assertFalse(w2.token_file.exists())
        self.assertEqual(f.read_text(), w.token + "\n")
        # a run folder it cannot write to: refused, saying which file
        gone = net.dir / "nowhere"
        r = subprocess.run([str(BIN), "--run", str(gone), "web", "--listen",
                            f"127.0.0.1:{free_port()}"], capture_output=True, text=True,
                           timeout=20)
        self.assertEqual(r.returncode, 1, r.stdout + r.stderr)
        self.assertIn(f"cannot open the run folder {gone} for the token file", r.stderr)

    def test_the_token_file_is_created_0600_under_a_temporary_name_then_renamed(self):
        """Never readable by others, not for an instant: the system calls, as strace sees them.
        The file is born 0600 (a umask only takes bits away) and reaches its name by rename."""
        if not shutil.which("strace"):
            self.skipTest("strace not found (apt-get install strace)")
        net = self.net("ring:3")
        port = free_port()
        log = self.tmpdir() / "strace.log"
        proc = subprocess.Popen(
            ["strace", "-f", "-qq", "-o", str(log), "-e",
             "trace=open,openat,openat2,creat,rename,renameat,renameat2,link,linkat,chmod,"
             "fchmod,fchmodat", str(BIN), "--run", str(net.dir), "web", "--listen",
             f"127.0.0.1:{port}"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            first = proc.stdout.readline()
            self.assertIn("dashboard of", first)
            # strace's child is the dashboard: stopped by its pid, strace then ends with it
            web_pid = int(Path(f"/proc/{proc.pid}/task/{proc.pid}/children").read_text().split()[0])
            os.kill(web_pid, signal.SIGTERM)
            proc.wait(timeout=30)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            proc.stdout.close()
            err = proc.stderr.read()
            proc.stderr.close()
        self.assertFalse(any(m in err for m in self.SANITIZER_MARKS), err)
        name = f"web-{port}.token"
        calls = [l for l in log.read_text().splitlines() if name in l or "chmod" in l]
        creates = [l for l in calls if "O_CREAT" in l]
        self.assertEqual(len(creates), 1, calls)
        self.assertRegex(creates[0], rf'"\.{re.escape(name)}\.[0-9a-f]{{16}}", '
                                     r"O_WRONLY\|O_CREAT\|O_EXCL\|O_NOFOLLOW\|O_CLOEXEC, 0600\)")
        self.assertFalse([l for l in calls if "chmod" in l], calls)
        renames = [l for l in calls if "rename" in l]
        self.assertEqual(len(renames), 1, calls)
        self.assertRegex(renames[0], rf'"\.{re.escape(name)}\.[0-9a-f]{{16}}", \d+, "{name}"\) = 0')

    def test_the_page_cannot_change_share_dir_or_neighbours_but_can_change_ttl(self):
        net = self.net("ring:3")
        w = self.web(net)
        before = self.ini_bytes(net)
        cfg0 = json.loads(net.peer(1, "config", "--json").stdout)
        elsewhere = self.tmpdir()
        (elsewhere / "secret.txt").write_text("not for the class\n")
        share_or_nb = "use the CLI: the dashboard cannot change share_dir or neighbours"
        for line, text in [
            (f"peer 1 modify share_dir {elsewhere}", share_or_nb),
            ("peer 1 modify share_dir /etc", share_or_nb),
            ("peer 1 modify neighbours 127.0.0.1:1", share_or_nb),
            ("peer 1 modify neighbours ''", share_or_nb),
            ("peer 3 modify --json share_dir /etc", share_or_nb),  # options first, as the peer
            ("peer 2 modify 'share_dir' \"/etc\"", share_or_nb),    # reads them; quotes
            ("peer 2 modify   neighbours   127.0.0.1:1", share_or_nb),
            ("peer 1 modify log_level debug", "the dashboard may modify only ttl"),
            ("peer 1 modify Share_dir /etc", "the dashboard may modify only ttl"),
            ("peer 1 ping", 'the dashboard does not run "ping"'),
        ]:
            st, res = w.cmd(line)
            self.assertEqual(st, 403, f"{line}: {res}")
            self.assertIn(text, res, line)
            self.assertIn("use the CLI", res, line)
        self.assertEqual(self.ini_bytes(net), before)
        cfg = json.loads(net.peer(1, "config", "--json").stdout)
        self.assertEqual((cfg["share_dir"], cfg["neighbours"], cfg["ttl"]),
                         (cfg0["share_dir"], cfg0["neighbours"], cfg0["ttl"]))
        r = net.peer(2, "get", "secret.txt")
        self.assertEqual(r.returncode, 1, r.stdout + r.stderr)

        # what the page may do, it does: ttl, links, pause and resume
        st, res = w.cmd("peer 1 modify ttl 2")
        self.assertEqual((st, res["exit"]), (200, 0), res)
        self.assertEqual(json.loads(net.peer(1, "config", "--json").stdout)["ttl"], 2)
        self.assertRegex((net.dir / "peer-1.ini").read_text(), r"(?m)^ttl\s*=\s*2\b")
        host, port = net.addr(2)
        for line in (f"peer 1 link down {host}:{port}", f"peer 1 link up {host}:{port}",
                     "peer 3 pause", "peer 3 resume", "peer 1 search 2.txt", "peer 1 ls --json",
                     "peer 1 transfers", "peer 1 events --json"):
            st, res = w.cmd(line)
            self.assertEqual((st, res["exit"]), (200, 0), f"{line}: {res}")
        # and the CLI, through the peer's 0600 socket, still may change the share
        self.assertOk(net.peer(1, "modify", "share_dir", str(elsewhere)))
        self.assertOk(net.peer(2, "get", "secret.txt"))

    def test_another_local_user_gets_401_and_cannot_read_the_token_file(self):
        """As `nobody`, the attack of issue 11: no page, no peers, no events, no modify."""
        if os.getuid() != 0:
            self.skipTest("needs root to run commands as another user (runuser)")
        for tool in ("runuser", "curl"):
            if not shutil.which(tool):
                self.skipTest(f"{tool} not found")
        try:
            pwd.getpwnam("nobody")
        except KeyError:
            self.skipTest("no user nobody")
        net = self.net("ring:3")
        w = self.web(net)
        before = self.ini_bytes(net)
        # let nobody into the run folder: only the file's own mode keeps the token from them
        net.dir.chmod(0o755)

        def as_nobody(*args: str) -> subprocess.CompletedProcess:
            return subprocess.run(["runuser", "-u", "nobody", "--", *args], capture_output=True,
                                  text=True, timeout=30, cwd="/")

        r = as_nobody("ls", str(net.dir))
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn(w.token_file.name, r.stdout.split())
        r = as_nobody("cat", str(w.token_file))
        self.assertNotEqual(r.returncode, 0)
        self.assertIn("Permission denied", r.stderr)
        self.assertNotIn(w.token, r.stdout)

        url = w.base
        for args in (["-X", "POST", "-H", "X-Floodshare: 1", "--data", "peer 1 modify share_dir /etc",
                      f"{url}/api/cmd"],
                     ["-X", "POST", "-H", "X-Floodshare: 1", "--data", "peer 1 pause",
                      f"{url}/api/cmd"],
                     [f"{url}/api/peers"], [f"{url}/"], [f"{url}/events"],
                     ["-H", f"Authorization: Bearer {'0' * 64}", f"{url}/api/peers"]):
            r = as_nobody("curl", "-sS", "--max-time", "5", "-o", "-", "-w", "\n%{http_code}",
                          *args)
            body, _, code = r.stdout.rpartition("\n")
            self.assertEqual(code, "401", f"{args}: {r.stdout[:300]} {r.stderr}")
            self.assertIn("needs its token", body)
            for s in SECRETS:
                self.assertNotIn(s.decode(), body, args)
        self.assertEqual(self.ini_bytes(net), before)
        self.assertFalse(json.loads(net.peer(1, "config", "--json").stdout)["paused"])


if __name__ == "__main__":
    unittest.main()
