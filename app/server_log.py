"""gunicorn's own log (booting, workers exiting, timeouts) as JSON lines.

Set in gunicorn.conf.py as `logger_class`. gunicorn's `logconfig_dict` could
set a formatter too, but any logging configuration also switches on its access
log, whose fields it then builds for every request; the app's request log
already says what those would. This keeps gunicorn's handlers (stderr, or the
file `errorlog` names) and only gives them the app's formatter.
"""
import logging

from gunicorn.glogging import Logger

from .logs import JsonLineFormatter


class GunicornJsonLogger(Logger):
    def setup(self, cfg):
        super().setup(cfg)  # also run again on a configuration reload (HUP)
        for handler in self.error_log.handlers:
            # gunicorn's own (it marks them), to stderr or a file; syslog keeps its
            # format, and a handler someone else attached keeps its own
            if getattr(handler, "_gunicorn", False) and isinstance(handler, logging.StreamHandler):
                handler.setFormatter(JsonLineFormatter())
