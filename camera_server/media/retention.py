"""Apply the retention limits (keep_days, max_media_gb) now and then every hour, in a daemon thread."""
import logging
import threading

log = logging.getLogger(__name__)
INTERVAL_S = 3600.0


class RetentionTimer:
    def __init__(self, catalogue, keep_days=0.0, max_media_gb=0.0, interval_s=INTERVAL_S):
        self.catalogue = catalogue
        self.max_age_days = keep_days or None
        self.max_total_bytes = int(max_media_gb * 1024 ** 3) or None
        self.interval_s = interval_s
        self._stop = threading.Event()
        self._thread = None

    @property
    def enabled(self):
        return self.max_age_days is not None or self.max_total_bytes is not None

    def start(self):
        if self.enabled:
            self._thread = threading.Thread(target=self._run, name="retention", daemon=True)
            self._thread.start()
        return self

    def apply(self):
        removed = self.catalogue.prune(max_age_days=self.max_age_days, max_total_bytes=self.max_total_bytes)
        if removed:
            log.info("retention: removed %d old media files", len(removed))
        return removed

    def stop(self, timeout=5.0):
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def _run(self):
        while not self._stop.is_set():
            try:
                self.apply()
            except Exception:       # the thread's top level: report and try again next time
                log.exception("retention: pruning failed")
            self._stop.wait(self.interval_s)
