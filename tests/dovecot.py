"""A throwaway Dovecot IMAP server for the ingest tests (started and stopped by pid).

Needs the Debian package dovecot-imapd (scripts/system-deps.sh installs it).
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

from imapclient import IMAPClient

CONFIG = """protocols = imap
listen = 127.0.0.1
base_dir = {dir}/run
state_dir = {dir}/state
log_path = {dir}/dovecot.log
ssl = no
disable_plaintext_auth = no
auth_mechanisms = plain login
auth_failure_delay = 0
default_login_user = dovenull
default_internal_user = dovecot
first_valid_uid = 1
valid_chroot_dirs = {dir}/mail
mail_location = maildir:~/Maildir
namespace inbox {{
  inbox = yes
  separator = /
}}
passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%u {dir}/users
}}
userdb {{
  driver = static
  args = uid=nobody gid=nogroup home={dir}/mail/./%u
}}
service imap-login {{
  inet_listener imap {{
    address = 127.0.0.1
    port = {port}
  }}
  inet_listener imaps {{
    port = 0
  }}
}}
service auth {{
  user = root
}}
service auth-worker {{
  user = root
}}
"""
PASSWORD = "secret-imap"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class Dovecot:
    """One server with a few users (each user is one functional mailbox)."""

    def __init__(self, users: list[str]):
        if shutil.which("dovecot") is None:
            raise RuntimeError("dovecot is not installed: run scripts/system-deps.sh as root")
        self.users = users
        self.dir = Path(tempfile.mkdtemp(prefix="mdv-", dir="/tmp"))
        self.port = free_port()
        self.pid: int | None = None

    def start(self) -> Dovecot:
        for sub in ("run", "state", "mail"):
            (self.dir / sub).mkdir(parents=True, exist_ok=True)
        for user in self.users:
            (self.dir / "mail" / user).mkdir(exist_ok=True)
        subprocess.run(["chown", "-R", "nobody:nogroup", str(self.dir / "mail")], check=True)
        (self.dir / "users").write_text(
            "".join(f"{u}:{{PLAIN}}{PASSWORD}::::::\n" for u in self.users)
        )
        (self.dir / "dovecot.conf").write_text(CONFIG.format(dir=self.dir, port=self.port))
        subprocess.run(["dovecot", "-c", str(self.dir / "dovecot.conf")], check=True)
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            pid_file = self.dir / "run" / "master.pid"
            if pid_file.exists() and pid_file.read_text().strip():
                try:
                    with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as s:
                        if s.recv(100).startswith(b"* OK"):
                            self.pid = int(pid_file.read_text().strip())
                            return self
                except OSError:
                    pass
            time.sleep(0.1)
        log = (self.dir / "dovecot.log").read_text() if (self.dir / "dovecot.log").exists() else ""
        raise RuntimeError(f"dovecot did not start on port {self.port}: {log[-2000:]}")

    def stop(self) -> None:
        if self.pid:
            os.kill(self.pid, signal.SIGTERM)
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline:
                try:
                    os.kill(self.pid, 0)
                except ProcessLookupError:
                    break
                time.sleep(0.1)
            self.pid = None
        shutil.rmtree(self.dir, ignore_errors=True)

    def client(self, user: str) -> IMAPClient:
        client = IMAPClient("127.0.0.1", port=self.port, ssl=False, timeout=30)
        client.login(user, PASSWORD)
        return client

    def append(self, user: str, messages: list[bytes], folder: str = "INBOX") -> None:
        with self.client(user) as client:
            for raw in messages:
                client.append(folder, raw)

    def uids(self, user: str, folder: str = "INBOX") -> list[int]:
        with self.client(user) as client:
            if not client.folder_exists(folder):
                return []
            client.select_folder(folder, readonly=True)
            return client.search(["NOT", "DELETED"])

    def count(self, user: str, folder: str = "INBOX") -> int:
        return len(self.uids(user, folder))

    def empty(self, user: str) -> None:
        with self.client(user) as client:
            for folder in [f[2] for f in client.list_folders()]:
                client.select_folder(folder)
                uids = client.search(["ALL"])
                if uids:
                    client.delete_messages(uids)
                    client.expunge()
