"""IBM COS immutability double: moto's S3 server plus IBM's legacy retention API.

Implements section (a) of shared/IMMUTABILITY.md on top of moto (which keeps the bytes):
bucket `?protection`; `Retention-Period` / `Retention-Expiration-Date` / `Retention-Legal-Hold-ID`
on PUT, CompleteMultipartUpload and COPY (with `Retention-Directive`); the same state on HEAD and
GET as `Retention-*` headers; `?legalHold` list/add/remove; `?extendRetention`. It enforces the
documented rules: hold IDs of 1-64 allowed characters, at most 100 holds, 409 on a duplicate, 400
on an object without retention, retention that can only grow and stays within the bucket maximum,
delete/overwrite refused while retained or held (also key by key inside DeleteObjects), and a
bucket policy that is never disabled, whose minimum and maximum are never lowered (0-365 243 days,
minimum <= default <= maximum) and whose permanent option stays on once on. Ordinary S3 requests
go to moto unchanged.

Run on its own:  python tests/support/cos_double.py [PORT]   (prints "PORT <n>", serves until
stdin closes, or forever with --forever). GET /__double/stats returns request counts as JSON:
by method, HEADs by key, requests that store an object (PUT, CompleteMultipartUpload, COPY)
by "bucket/key", refused ones included, and DELETEs and DeleteObjects requests by bucket.
"""
import io
import json
import re
import sys
import threading
import time
import xml.etree.ElementTree as ET
from email.utils import formatdate, parsedate_to_datetime
from urllib.parse import parse_qs, unquote
from datetime import datetime, timezone

from moto.server import DomainDispatcherApplication, create_backend_app
from werkzeug.serving import make_server

HOLD_ID = re.compile(r"^[A-Za-z0-9!_.*()'-]{1,64}$")
MAX_HOLDS = 100
LOCK = threading.Lock()
PROTECTION = {}  # bucket -> dict(min, default, max, permanent) in days
OBJECTS = {}  # (bucket, key) -> dict(created, period, expiration, holds: {id: date})
STATS = {"requests": 0, "by_method": {}, "heads": {}, "writes": {}, "deletes": {}, "batch_deletes": {}}
S3_NS = "{http://s3.amazonaws.com/doc/2006-03-01/}"


def http_date(ts):
    return formatdate(ts, usegmt=True)


def parse_date(value):
    value = value.strip()
    for fmt in ("%Y-%m-%dT%H:%M:%SZ", "%Y%m%dT%H%M%SZ", "%Y-%m-%dT%H:%M:%S.%fZ"):
        try:
            return datetime.strptime(value, fmt).replace(tzinfo=timezone.utc).timestamp()
        except ValueError:
            pass
    try:
        return parsedate_to_datetime(value).timestamp()
    except (TypeError, ValueError):
        return None


def error(start_response, status, code, message):
    body = (
        '<?xml version="1.0" encoding="UTF-8"?><Error><Code>%s</Code><Message>%s</Message></Error>' % (code, message)
    ).encode()
    start_response(status, [("Content-Type", "application/xml"), ("Content-Length", str(len(body)))])
    return [body]


def ok(start_response, body=b"", content_type="application/xml", headers=()):
    start_response("200 OK", [("Content-Type", content_type), ("Content-Length", str(len(body)))] + list(headers))
    return [body]


def has_integrity(environ):
    return any(
        k in environ
        for k in ("HTTP_CONTENT_MD5", "HTTP_X_AMZ_TRAILER", "HTTP_X_AMZ_SDK_CHECKSUM_ALGORITHM")
    ) or any(k.startswith("HTTP_X_AMZ_CHECKSUM_") for k in environ)


MAX_DAYS = 365243  # api-reference-buckets.md (immutable.md says 36 135: the docs disagree)


def protection_refusal(current, status, conf):
    """Why IBM would refuse this ProtectionConfiguration on a bucket whose policy is `current`
    (None: no policy yet), as (status line, code, message), or None. The rules: Status is
    Retention (a policy cannot be disabled), every value within 0..MAX_DAYS days, minimum <=
    default <= maximum, and, once a policy exists, its minimum and maximum are never lowered and
    permanent retention, once enabled, stays enabled."""
    if status != "Retention":
        if current is not None:
            return ("403 Forbidden", "AccessDenied", "a retention policy cannot be disabled")
        return ("400 Bad Request", "InvalidArgument", "Status must be Retention")
    if not all(0 <= conf[k] <= MAX_DAYS for k in ("min", "default", "max")):
        return ("400 Bad Request", "InvalidArgument", "retention days must be within 0-%d" % MAX_DAYS)
    if not conf["min"] <= conf["default"] <= conf["max"]:
        return ("400 Bad Request", "InvalidArgument", "minimum <= default <= maximum")
    if current is not None:
        if conf["min"] < current["min"]:
            return ("403 Forbidden", "AccessDenied", "the minimum retention cannot be lowered")
        if conf["max"] < current["max"]:
            return ("403 Forbidden", "AccessDenied", "the maximum retention cannot be lowered")
        if current["permanent"] and not conf["permanent"]:
            return ("403 Forbidden", "AccessDenied", "permanent retention cannot be disabled")
    return None


def protected_reason(state, now=None):
    now = now or time.time()
    if not state:
        return None
    if state["holds"]:
        return "the object has %d legal hold(s)" % len(state["holds"])
    if state["period"] == -1:
        return "the object is retained indefinitely"
    if state["expiration"] is not None and state["expiration"] > now:
        return "the object is retained until %s" % http_date(state["expiration"])
    return None


class Double:
    def __init__(self):
        self.moto = DomainDispatcherApplication(create_backend_app)

    def forward(self, environ, start_response, body, on_status=None, extra_headers=()):
        environ["wsgi.input"] = io.BytesIO(body)
        if body or environ.get("CONTENT_LENGTH"):
            environ["CONTENT_LENGTH"] = str(len(body))
        seen = {}

        def sr(status, headers, exc_info=None):
            seen["status"] = int(status.split()[0])
            if seen["status"] < 300:
                headers = list(headers) + list(extra_headers)
            return start_response(status, headers, exc_info)

        result = self.moto(environ, sr)
        chunks = list(result)
        if on_status is not None:
            on_status(seen.get("status", 500))
        return chunks

    def delete_objects(self, environ, start_response, bucket, body):
        """DeleteObjects on a protected bucket: each retained or held key is refused on its own
        (an <Error> in the answer), the others deleted."""
        if not has_integrity(environ):
            return error(start_response, "400 Bad Request", "MissingContentMD5", "an integrity header is required")
        try:
            root = ET.fromstring(body)
            keys = [o.findtext(S3_NS + "Key") or o.findtext("Key") for o in root.iter() if o.tag in (S3_NS + "Object", "Object")]
            quiet = (root.findtext(S3_NS + "Quiet") or root.findtext("Quiet") or "").strip() == "true"
        except Exception:
            return error(start_response, "400 Bad Request", "MalformedXML", "bad Delete document")
        if not keys or len(keys) > 1000 or any(k is None for k in keys):
            return error(start_response, "400 Bad Request", "MalformedXML", "1 to 1000 keys")
        deleted, errors = [], []
        for key in keys:
            with LOCK:
                state = OBJECTS.get((bucket, key))
            reason = protected_reason(state)
            if reason:
                errors.append((key, "AccessDenied", "cannot delete: " + reason))
                continue
            env = dict(environ, REQUEST_METHOD="DELETE", PATH_INFO="/%s/%s" % (bucket, key), QUERY_STRING="")
            for k in ("CONTENT_TYPE", "REQUEST_URI", "RAW_URI", "HTTP_CONTENT_MD5"):
                env.pop(k, None)
            for k in [k for k in env if k.startswith("werkzeug.") or k.startswith("HTTP_X_AMZ_CHECKSUM")]:
                env.pop(k)
            seen = {}
            self.forward(env, lambda status, headers, exc_info=None: seen.setdefault("status", int(status.split()[0])), b"")
            if seen.get("status", 500) < 300:
                with LOCK:
                    OBJECTS.pop((bucket, key), None)
                deleted.append(key)
            else:
                errors.append((key, "InternalError", "moto answered %s" % seen.get("status")))
        esc = lambda s: s.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
        xml = '<?xml version="1.0" encoding="UTF-8"?><DeleteResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/">'
        if not quiet:
            xml += "".join("<Deleted><Key>%s</Key></Deleted>" % esc(k) for k in deleted)
        xml += "".join("<Error><Key>%s</Key><Code>%s</Code><Message>%s</Message></Error>" % (esc(k), c, esc(m)) for k, c, m in errors)
        xml += "</DeleteResult>"
        return ok(start_response, xml.encode())

    def retention_from_headers(self, environ, bucket, start_response):
        """The retention a new object gets: (period, expiration, hold_id) or an error response."""
        conf = PROTECTION[bucket]
        period = environ.get("HTTP_RETENTION_PERIOD")
        date = environ.get("HTTP_RETENTION_EXPIRATION_DATE")
        hold = environ.get("HTTP_RETENTION_LEGAL_HOLD_ID")
        if period is not None and date is not None:
            return None, error(start_response, "400 Bad Request", "InvalidRequest", "Retention-Period and Retention-Expiration-Date are exclusive")
        now = time.time()
        if date is not None:
            ts = parse_date(date)
            if ts is None:
                return None, error(start_response, "400 Bad Request", "InvalidArgument", "bad Retention-Expiration-Date")
            period = int(ts - now)
            expiration = ts
        else:
            try:
                period = int(period) if period is not None else conf["default"] * 86400
            except ValueError:
                return None, error(start_response, "400 Bad Request", "InvalidArgument", "bad Retention-Period")
            expiration = None if period == -1 else now + period
        if period != -1 and not (conf["min"] * 86400 <= period <= conf["max"] * 86400):
            return None, error(start_response, "400 Bad Request", "InvalidArgument", "retention outside the bucket's minimum and maximum")
        if hold is not None and not HOLD_ID.match(hold):
            return None, error(start_response, "400 Bad Request", "InvalidArgument", "invalid legal hold ID")
        return (period, expiration, hold), None

    def __call__(self, environ, start_response):
        method = environ["REQUEST_METHOD"]
        path = unquote(environ.get("PATH_INFO", ""))
        query = parse_qs(environ.get("QUERY_STRING", ""), keep_blank_values=True)
        length = int(environ.get("CONTENT_LENGTH") or 0)
        body = environ["wsgi.input"].read(length) if length else b""
        with LOCK:
            STATS["requests"] += 1
            STATS["by_method"][method] = STATS["by_method"].get(method, 0) + 1
        if path == "/__double/stats":
            with LOCK:
                return ok(start_response, json.dumps(STATS).encode(), "application/json")
        parts = path.lstrip("/").split("/", 1)
        bucket = parts[0]
        key = parts[1] if len(parts) > 1 else ""
        if method == "HEAD" and key:
            with LOCK:
                STATS["heads"][key] = STATS["heads"].get(key, 0) + 1
        if method == "DELETE" and key and "uploadId" not in query:
            with LOCK:
                STATS["deletes"][bucket] = STATS["deletes"].get(bucket, 0) + 1
        if method == "POST" and not key and "delete" in query:
            with LOCK:
                STATS["batch_deletes"][bucket] = STATS["batch_deletes"].get(bucket, 0) + 1
            if bucket in PROTECTION:
                return self.delete_objects(environ, start_response, bucket, body)

        if not key and "protection" in query:
            if method == "GET":
                conf = PROTECTION.get(bucket)
                if conf is None:
                    xml = "<ProtectionConfiguration><Status>Disabled</Status></ProtectionConfiguration>"
                else:
                    xml = (
                        "<ProtectionConfiguration><Status>Retention</Status>"
                        "<MinimumRetention><Days>%d</Days></MinimumRetention>"
                        "<DefaultRetention><Days>%d</Days></DefaultRetention>"
                        "<MaximumRetention><Days>%d</Days></MaximumRetention>"
                        "<EnablePermanentRetention>%s</EnablePermanentRetention></ProtectionConfiguration>"
                    ) % (conf["min"], conf["default"], conf["max"], "true" if conf["permanent"] else "false")
                return ok(start_response, xml.encode())
            if method == "PUT":
                if not has_integrity(environ):
                    return error(start_response, "400 Bad Request", "MissingContentMD5", "an integrity header is required")
                try:
                    root = ET.fromstring(body)
                    status = (root.findtext("Status") or "").strip()
                    days = lambda tag: int(root.find(tag).find("Days").text)
                    conf = dict(min=days("MinimumRetention"), default=days("DefaultRetention"), max=days("MaximumRetention"),
                                permanent=(root.findtext("EnablePermanentRetention") or "").strip() == "true")
                except Exception:
                    return error(start_response, "400 Bad Request", "MalformedXML", "bad ProtectionConfiguration")
                refusal = protection_refusal(PROTECTION.get(bucket), status, conf)
                if refusal:
                    return error(start_response, *refusal)
                with LOCK:
                    PROTECTION[bucket] = conf
                return ok(start_response)

        if bucket not in PROTECTION or not key:
            return self.forward(environ, start_response, body)

        state_key = (bucket, key)
        with LOCK:
            state = OBJECTS.get(state_key)
        reason = protected_reason(state)

        if "legalHold" in query:
            if state is None:
                if method == "POST":
                    return error(start_response, "400 Bad Request", "InvalidRequest", "the object has no retention")
                return error(start_response, "404 Not Found", "NoSuchObjectRetention", "the object has no retention")
            if method == "GET":
                holds = "".join("<LegalHold><ID>%s</ID><Date>%s</Date></LegalHold>" % (i, d) for i, d in state["holds"].items())
                xml = (
                    '<?xml version="1.0" encoding="UTF-8"?><RetentionState><CreateTime>%s</CreateTime>'
                    "<RetentionPeriod>%d</RetentionPeriod><RetentionPeriodExpirationDate>%s</RetentionPeriodExpirationDate>"
                    "<LegalHoldSet>%s</LegalHoldSet></RetentionState>"
                ) % (http_date(state["created"]), state["period"], http_date(state["expiration"] or 0), holds)
                return ok(start_response, xml.encode())
            if method == "POST":
                if not has_integrity(environ):
                    return error(start_response, "400 Bad Request", "MissingContentMD5", "an integrity header is required")
                if "add" in query:
                    hid = query["add"][0]
                    if not HOLD_ID.match(hid):
                        return error(start_response, "400 Bad Request", "InvalidArgument", "invalid legal hold ID")
                    with LOCK:
                        if hid in state["holds"]:
                            return error(start_response, "409 Conflict", "LegalHoldAlreadyExists", "the hold exists")
                        if len(state["holds"]) >= MAX_HOLDS:
                            return error(start_response, "400 Bad Request", "TooManyLegalHolds", "at most 100 legal holds")
                        state["holds"][hid] = http_date(time.time())
                    return ok(start_response)
                if "remove" in query:
                    hid = query["remove"][0]
                    with LOCK:
                        if hid not in state["holds"]:
                            return error(start_response, "404 Not Found", "NoSuchLegalHold", "no such hold")
                        del state["holds"][hid]
                    return ok(start_response)
            return error(start_response, "400 Bad Request", "InvalidRequest", "bad legalHold request")

        if "extendRetention" in query and method == "POST":
            if state is None:
                return error(start_response, "400 Bad Request", "InvalidRequest", "the object has no retention")
            given = [h for h in ("HTTP_ADDITIONAL_RETENTION_PERIOD", "HTTP_EXTEND_RETENTION_FROM_CURRENT_TIME",
                                 "HTTP_NEW_RETENTION_EXPIRATION_DATE", "HTTP_NEW_RETENTION_PERIOD") if h in environ]
            if len(given) != 1:
                return error(start_response, "400 Bad Request", "InvalidRequest", "exactly one extension header")
            h, v, now = given[0], environ[given[0]], time.time()
            try:
                if h == "HTTP_NEW_RETENTION_EXPIRATION_DATE":
                    new_exp = parse_date(v)
                    new_period = int(new_exp - state["created"])
                else:
                    n = int(v)
                    if h == "HTTP_ADDITIONAL_RETENTION_PERIOD":
                        new_period = state["period"] + n
                    elif h == "HTTP_EXTEND_RETENTION_FROM_CURRENT_TIME":
                        new_period = int(now + n - state["created"])
                    else:
                        new_period = n
                    new_exp = None if new_period == -1 else state["created"] + new_period
            except (TypeError, ValueError):
                return error(start_response, "400 Bad Request", "InvalidArgument", "bad extension value")
            conf = PROTECTION[bucket]
            longer = new_period == -1 or (state["period"] != -1 and new_period > state["period"])
            if not longer:
                return error(start_response, "400 Bad Request", "InvalidArgument", "retention can only be extended")
            if new_period != -1 and new_period > conf["max"] * 86400:
                return error(start_response, "400 Bad Request", "InvalidArgument", "beyond the bucket's maximum retention")
            with LOCK:
                state["period"], state["expiration"] = new_period, new_exp
            return ok(start_response)

        if method == "DELETE" and "uploadId" not in query:
            if reason:
                return error(start_response, "403 Forbidden", "AccessDenied", "cannot delete: " + reason)

            def gone(status):
                if status < 300:
                    with LOCK:
                        OBJECTS.pop(state_key, None)
            return self.forward(environ, start_response, body, gone)

        if method == "PUT" and "partNumber" in query and "HTTP_X_AMZ_COPY_SOURCE" not in environ:
            if not has_integrity(environ):
                return error(start_response, "400 Bad Request", "MissingContentMD5", "parts need an integrity header")
            return self.forward(environ, start_response, body)
        writes_object = (method == "PUT" and "partNumber" not in query) or (method == "POST" and "uploadId" in query)
        if writes_object and key:
            with LOCK:
                STATS["writes"][bucket + "/" + key] = STATS["writes"].get(bucket + "/" + key, 0) + 1
        if writes_object:
            if reason:
                return error(start_response, "403 Forbidden", "AccessDenied", "cannot overwrite: " + reason)
            if method == "PUT" and not has_integrity(environ) and "HTTP_X_AMZ_COPY_SOURCE" not in environ:
                return error(start_response, "400 Bad Request", "MissingContentMD5", "an integrity header is required")
            copy_src = environ.get("HTTP_X_AMZ_COPY_SOURCE")
            directive = environ.get("HTTP_RETENTION_DIRECTIVE", "COPY").upper()
            if copy_src and directive == "COPY":
                src = unquote(copy_src.split("?")[0]).lstrip("/").split("/", 1)
                with LOCK:
                    src_state = OBJECTS.get((src[0], src[1] if len(src) > 1 else ""))
                now = time.time()
                retention = (src_state["period"], src_state["expiration"], None) if src_state else None
                copied_holds = list(src_state["holds"]) if src_state else []
            else:
                retention, err = self.retention_from_headers(environ, bucket, start_response)
                if err is not None:
                    return err
                copied_holds = []

            def record(status):
                if status < 300 and retention is not None:
                    period, expiration, hold = retention
                    holds = {h: http_date(time.time()) for h in copied_holds}
                    if hold:
                        holds[hold] = http_date(time.time())
                    with LOCK:
                        OBJECTS[state_key] = dict(created=time.time(), period=period, expiration=expiration, holds=holds)
            if method == "POST" and "uploadId" not in query:
                return self.forward(environ, start_response, body)
            return self.forward(environ, start_response, body, record)

        if method in ("HEAD", "GET") and state is not None:
            extra = [("Retention-Period", str(state["period"])), ("Retention-Legal-Hold-Count", str(len(state["holds"])))]
            if state["expiration"] is not None:
                extra.append(("Retention-Expiration-Date", http_date(state["expiration"])))
            return self.forward(environ, start_response, body, extra_headers=extra)
        return self.forward(environ, start_response, body)


def main():
    port = int(sys.argv[1]) if len(sys.argv) > 1 and sys.argv[1].isdigit() else 0
    server = make_server("127.0.0.1", port, Double(), threaded=True)
    print("PORT %d" % server.server_port, flush=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    if "--forever" in sys.argv:
        threading.Event().wait()
    sys.stdin.read()
    server.shutdown()


if __name__ == "__main__":
    main()
