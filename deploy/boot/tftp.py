"""A TFTP server (PyPI tftpy) for firmware that cannot speak HTTP: PXELinux and GRUB configs
rendered on request, bootloaders, kernels and initrds from the boot files directory.

Nothing is written to disk and no file outside the boot files directory is served: tftpy is
given an empty directory of its own as its root, so every read goes through `open()` below
(configs from `configs`, files through deploy.boot.files, which refuses '..' and links that
leave the directory), and every upload is refused.

`configs(request)` takes a deploy.boot.ipxe.ConfigRequest and returns the text (None: not
found); the caller wires it to the database (deploy.management.commands.tftpd.database_configs),
so this module stays free of the ORM.
"""

import logging
import os
import tempfile
import threading

import tftpy

from deploy.boot import files, ipxe

logger = logging.getLogger(__name__)

DEFAULT_PORT = 69
DEFAULT_TIMEOUT = 5.0  # seconds: tftpy's retransmission timeout, and how fast stop() is seen


def _memory_file(data):
    """`data` as a file in memory that has a descriptor: tftpy unlocks (flock) every file it
    served, which an io.BytesIO cannot take."""
    fd = os.memfd_create("dcportal-tftp", os.MFD_CLOEXEC)
    file = os.fdopen(fd, "w+b")
    file.write(data)
    file.seek(0)
    return file


class BootTftpServer:
    def __init__(self, *, files_dir, configs, thread_done=None):
        """`thread_done` runs in the server's thread when it ends (to close what `configs`
        opened there, such as a database connection)."""
        self.files_dir = files_dir
        self.configs = configs
        self.thread_done = thread_done
        self.server = None

    def open(self, name, raddress=None, rport=None):
        """A file object for the name a client asked for, or None (tftpy: "file not found").

        Never raises: an exception here would end tftpy's whole server loop."""
        try:
            request = ipxe.tftp_request(name)
            if request is not None:
                text = self.configs(request)
                if text is not None:
                    logger.info("TFTP %s from %s: %s config", name, raddress, request.kind)
                    return _memory_file(text.encode())
                return None
            file, size, _ = files.open_boot_file(self.files_dir, name)
            logger.info("TFTP %s from %s: %d bytes", name, raddress, size)
            return file
        except files.BootFileNotFound:
            return None
        except Exception:
            logger.exception("TFTP %s from %s failed", name, raddress)
            return None

    def refuse_upload(self, path, context):
        logger.warning("TFTP upload of %s refused", path)
        return None

    def start(self, *, listen="127.0.0.1", port=DEFAULT_PORT, timeout=DEFAULT_TIMEOUT):
        """Start serving in a thread; returns the port (port 0: a free one)."""
        self._root = tempfile.TemporaryDirectory(prefix="dcportal-tftp-")
        self.server = tftpy.TftpServer(
            tftproot=self._root.name, dyn_file_func=self.open, upload_open=self.refuse_upload
        )
        self.errors = []
        self._thread = threading.Thread(
            target=self._listen, args=(listen, port, timeout), name="tftp", daemon=True
        )
        self._thread.start()
        while not self.server.is_running.wait(0.05):
            if not self._thread.is_alive():
                self._root.cleanup()
                raise self.errors[0] if self.errors else RuntimeError("TFTP server did not start")
        return self.server.listenport

    def _listen(self, listen, port, timeout):
        try:
            self.server.listen(listen, port, timeout=timeout)
        except Exception as exc:  # a failed bind: start() raises it; later, the log says it
            logger.exception("the TFTP server on %s:%s stopped", listen, port)
            self.errors.append(exc)
        finally:
            if self.thread_done is not None:
                self.thread_done()

    def wait(self):
        """Block until the server stops (Ctrl-C in the caller's thread still works)."""
        while self._thread.is_alive():
            self._thread.join(0.5)

    def stop(self):
        if self.server is None:
            return
        self.server.stop(now=True)
        self._thread.join()
        self._root.cleanup()
        self.server = None
