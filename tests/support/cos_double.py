"""IBM COS double: moto's S3 server plus IBM's legacy retention API and IBM's bucket operations.

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

Bucket operations follow IBM's wire format too:
- CreateBucket (PUT /{bucket}): an optional CreateBucketConfiguration whose LocationConstraint is
  IBM's {location}-{class} (class standard, vault, cold, smart, flex or onerate_active, location
  lower-case [a-z0-9-]+, e.g. us-south-cold), else 400 InvalidLocationConstraint; the double keeps
  the constraint itself and creates the bucket in moto without the body. A bucket created without
  one gets DEFAULT_LOCATION (us-south-standard). Key Protect: ibm-sse-kp-encryption-algorithm
  (AES256 only) and ibm-sse-kp-customer-root-key-crn (crn:v1:...:kms: or :hs-crypto:...:key:...)
  come together or not at all, else 400 InvalidArgument. Bucket names are moto's rules (400
  InvalidBucketName); any existing name is refused with 409 BucketAlreadyExists, as IBM's names
  are global (moto itself answers 200 to a re-create in us-east-1). 200 on success.
- HeadBucket: moto's answer plus ibm-sse-kp-enabled: true / false, and ibm-sse-kp-crk-id: <crn>
  for a Key Protect bucket.
- GetBucketLocation (GET /{bucket}?location): the IBM constraint (DEFAULT_LOCATION for a bucket
  the double did not see created); moto's 404 NoSuchBucket for a missing bucket.
- ListBuckets (GET /): moto's listing; with ?extended, IBM's extended listing: IsTruncated,
  MaxKeys, Prefix, Marker (NextMarker when truncated) and each Bucket's LocationConstraint after
  its CreationDate, sorted by name, with prefix, marker and max-keys (at most 1000).
- DeleteBucket (DELETE /{bucket}): moto's answer (204; 409 BucketNotEmpty; 404 NoSuchBucket); on
  success the bucket's location, Key Protect and retention state are forgotten.

Run on its own:  python tests/support/cos_double.py [PORT]   (prints "PORT <n>", serves until
stdin closes, or forever with --forever). GET /__double/stats returns request counts as JSON:
by method, HEADs by key, requests that store an object (PUT, CompleteMultipartUpload, COPY)
by "bucket/key", refused ones included, DELETEs and DeleteObjects requests by bucket, and
CreateBucket ("bucket_creates") and DeleteBucket ("bucket_deletes") requests by bucket, refused
ones included.
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
from xml.sax.saxutils import escape as xml_escape
from datetime import datetime, timezone

from moto.server import DomainDispatcherApplication, create_backend_app
from werkzeug.serving import make_server

HOLD_ID = re.compile(r"^[A-Za-z0-9!_.*()'-]{1,64}$")
MAX_HOLDS = 100
LOCK = threading.Lock()
PROTECTION = {}  # bucket -> dict(min, default, max, permanent) in days
OBJECTS = {}  # (bucket, key) -> dict(created, period, expiration, holds: {id: date})
STATS = {"requests": 0, "by_method": {}, "heads": {}, "writes": {}, "deletes": {}, "batch_deletes": {},
         "bucket_creates": {}, "bucket_deletes": {}}
S3_NS = "{http://s3.amazonaws.com/doc/2006-03-01/}"
# IBM location constraints are {location}-{class}: us-south-standard, eu-de-cold, jp-tok-smart.
LOCATION_CONSTRAINT = re.compile(r"^[a-z0-9-]+-(standard|vault|cold|smart|flex|onerate_active)$")
# The constraint of a bucket created without one (IBM gives it the endpoint's standard class; the
# double answers as the us-south endpoint would).
DEFAULT_LOCATION = "us-south-standard"
LOCATIONS = {}  # bucket -> its location constraint, as given at CreateBucket
KP = {}  # bucket -> dict(crn, algorithm) for a bucket created with Key Protect
BUCKET_LOCK = threading.Lock()  # one CreateBucket/DeleteBucket at a time: the check and the act
SCOPE_REGION = re.compile(r"(Credential=[^/,\s]*/[0-9]{8}/)[^/,\s]*/")  # SigV4 scope's region
MAX_BUCKET_KEYS = 1000  # IBM's extended listing: at most 1000 buckets a page


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


def count(kind, name):
    with LOCK:
        STATS[kind][name] = STATS[kind].get(name, 0) + 1


def kp_refusal(algorithm, crn):
    """Why IBM would refuse these Key Protect headers of CreateBucket (None: not given), or None."""
    if algorithm is None and crn is None:
        return None
    if algorithm is None or crn is None:
        return "ibm-sse-kp-encryption-algorithm and ibm-sse-kp-customer-root-key-crn go together"
    if algorithm != "AES256":
        return "ibm-sse-kp-encryption-algorithm must be AES256"
    if not (crn.startswith("crn:v1:") and (":kms:" in crn or ":hs-crypto:" in crn) and ":key:" in crn):
        return "ibm-sse-kp-customer-root-key-crn is not the CRN of a Key Protect or HPCS root key"
    return None


def location_from_body(body):
    """The LocationConstraint of a CreateBucketConfiguration body (namespace or not): (constraint
    or None when the body names none, None) or (None, error code)."""
    if not body.strip():
        return None, None
    try:
        root = ET.fromstring(body)
    except ET.ParseError:
        return None, "MalformedXML"
    if root.tag.rsplit("}", 1)[-1] != "CreateBucketConfiguration":
        return None, "MalformedXML"
    for el in root:
        if el.tag.rsplit("}", 1)[-1] == "LocationConstraint":
            return (el.text or "").strip() or None, None
    return None, None


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

    def capture(self, environ, body=b""):
        """Forward to moto and keep its answer: (status line, headers, body)."""
        seen = {}

        def sr(status, headers, exc_info=None):
            seen["status"], seen["headers"] = status, list(headers)
        out = b"".join(self.forward(environ, sr, body))
        return seen.get("status", "500 Internal Server Error"), seen.get("headers", []), out

    def sub_request(self, environ, method, path, query=""):
        """A request of the double's own to moto (HEAD bucket, the full ListBuckets), made with the
        caller's credentials and without its body: (status line, headers, body)."""
        env = dict(environ, REQUEST_METHOD=method, PATH_INFO=path, QUERY_STRING=query, CONTENT_LENGTH="0")
        for k in ("CONTENT_TYPE", "REQUEST_URI", "RAW_URI", "HTTP_CONTENT_MD5"):
            env.pop(k, None)
        for k in [k for k in env if k.startswith("werkzeug.") or k.startswith("HTTP_X_AMZ_CHECKSUM")]:
            env.pop(k)
        return self.capture(env)

    def create_bucket(self, environ, start_response, bucket, body):
        """CreateBucket: IBM's location constraint and Key Protect headers are checked and kept
        here; moto creates the bucket from a bodiless PUT (it knows no IBM constraint)."""
        count("bucket_creates", bucket)
        location, bad = location_from_body(body)
        if bad:
            return error(start_response, "400 Bad Request", bad, "bad CreateBucketConfiguration")
        if location is not None and not LOCATION_CONSTRAINT.match(location):
            return error(start_response, "400 Bad Request", "InvalidLocationConstraint",
                         "the specified location constraint is not valid")
        algorithm = environ.get("HTTP_IBM_SSE_KP_ENCRYPTION_ALGORITHM")
        crn = environ.get("HTTP_IBM_SSE_KP_CUSTOMER_ROOT_KEY_CRN")
        refusal = kp_refusal(algorithm, crn)
        if refusal:
            return error(start_response, "400 Bad Request", "InvalidArgument", refusal)
        with BUCKET_LOCK:
            # moto answers 200 to a re-create in us-east-1; IBM refuses any existing name.
            if self.sub_request(environ, "HEAD", "/" + bucket)[0].startswith("200"):
                return error(start_response, "409 Conflict", "BucketAlreadyExists",
                             "the requested bucket name is not available")
            env = dict(environ, CONTENT_LENGTH="0")
            # moto takes the region from the signature's scope and refuses a bodiless create signed
            # for any region but us-east-1 (IllegalLocationConstraintException): sign it for that.
            if "HTTP_AUTHORIZATION" in env:
                env["HTTP_AUTHORIZATION"] = SCOPE_REGION.sub(r"\g<1>us-east-1/", env["HTTP_AUTHORIZATION"])
            for k in ("CONTENT_TYPE", "HTTP_CONTENT_MD5", "HTTP_X_AMZ_DECODED_CONTENT_LENGTH"):
                env.pop(k, None)
            for k in [k for k in env if k.startswith("HTTP_X_AMZ_CHECKSUM")]:
                env.pop(k)

            def created(status):
                if status < 300:
                    with LOCK:
                        LOCATIONS[bucket] = location or DEFAULT_LOCATION
                        if crn is not None:
                            KP[bucket] = {"crn": crn, "algorithm": algorithm}
                        else:
                            KP.pop(bucket, None)
            return self.forward(env, start_response, b"", created)

    def head_bucket(self, environ, start_response, bucket, body):
        with LOCK:
            kp = KP.get(bucket)
        extra = [("ibm-sse-kp-enabled", "true"), ("ibm-sse-kp-crk-id", kp["crn"])] if kp else [("ibm-sse-kp-enabled", "false")]
        return self.forward(environ, start_response, body, extra_headers=extra)

    def bucket_location(self, environ, start_response, bucket, body):
        """GetBucketLocation: the IBM constraint; moto's answer (404 NoSuchBucket) when the bucket
        is not there."""
        with LOCK:
            location = LOCATIONS.get(bucket)
        if location is None:
            status, headers, out = self.capture(environ, body)
            if not status.startswith("2"):
                start_response(status, headers)
                return [out]
            location = DEFAULT_LOCATION
        xml = ('<?xml version="1.0" encoding="UTF-8"?><LocationConstraint xmlns="http://s3.amazonaws.com/doc/2006-03-01/">'
               "%s</LocationConstraint>" % xml_escape(location))
        return ok(start_response, xml.encode())

    def list_buckets_extended(self, environ, start_response, query):
        """IBM's extended listing, made from moto's full listing: each Bucket with its
        LocationConstraint after CreationDate, IsTruncated, MaxKeys, Prefix, Marker and, when
        truncated, NextMarker; buckets sorted by name, after `marker`, starting with `prefix`."""
        prefix = query.get("prefix", [""])[0]
        marker = query.get("marker", [""])[0]
        try:
            max_keys = min(int(query.get("max-keys", [str(MAX_BUCKET_KEYS)])[0]), MAX_BUCKET_KEYS)
            if max_keys < 0:
                raise ValueError
        except ValueError:
            return error(start_response, "400 Bad Request", "InvalidArgument", "max-keys must be an integer from 0")
        status, headers, out = self.sub_request(environ, "GET", "/")
        if not status.startswith("2"):
            start_response(status, headers)
            return [out]
        try:
            root = ET.fromstring(out)
        except ET.ParseError:
            return error(start_response, "500 Internal Server Error", "InternalError", "moto's listing does not parse")
        ns = root.tag[1:].split("}")[0] if root.tag.startswith("{") else ""
        local = lambda el: el.tag.rsplit("}", 1)[-1]
        children = lambda el: "".join("<%s>%s</%s>" % (local(c), xml_escape(c.text or ""), local(c)) for c in el)
        owner = "".join("<Owner>%s</Owner>" % children(o) for o in root if local(o) == "Owner")
        buckets = []
        for el in root.iter():
            if local(el) == "Bucket":
                name = next((c.text or "" for c in el if local(c) == "Name"), "")
                if name.startswith(prefix) and name > marker:
                    buckets.append((name, el))
        buckets.sort(key=lambda b: b[0])
        page, truncated = buckets[:max_keys], len(buckets) > max_keys
        with LOCK:
            locations = {name: LOCATIONS.get(name, DEFAULT_LOCATION) for name, _ in page}
        listed = ""
        for name, el in page:
            parts = []
            for c in el:
                parts.append("<%s>%s</%s>" % (local(c), xml_escape(c.text or ""), local(c)))
                if local(c) == "CreationDate":
                    parts.append("<LocationConstraint>%s</LocationConstraint>" % xml_escape(locations[name]))
            if not any(local(c) == "CreationDate" for c in el):
                parts.append("<LocationConstraint>%s</LocationConstraint>" % xml_escape(locations[name]))
            listed += "<Bucket>%s</Bucket>" % "".join(parts)
        tag = lambda t, v: "<%s>%s</%s>" % (t, xml_escape(v), t) if v else "<%s/>" % t
        xml = '<?xml version="1.0" encoding="UTF-8"?><ListAllMyBucketsResult%s>' % (' xmlns="%s"' % ns if ns else "")
        xml += owner + "<IsTruncated>%s</IsTruncated><MaxKeys>%d</MaxKeys>" % ("true" if truncated else "false", max_keys)
        xml += tag("Prefix", prefix) + tag("Marker", marker)
        if truncated and page:
            xml += tag("NextMarker", page[-1][0])
        xml += "<Buckets>%s</Buckets></ListAllMyBucketsResult>" % listed
        return ok(start_response, xml.encode())

    def delete_bucket(self, environ, start_response, bucket, body):
        """DeleteBucket: moto decides (409 BucketNotEmpty, 404 NoSuchBucket); a deleted bucket's
        IBM state is forgotten, so that a bucket created again under its name starts afresh."""
        count("bucket_deletes", bucket)

        def gone(status):
            if status < 300:
                with LOCK:
                    LOCATIONS.pop(bucket, None)
                    KP.pop(bucket, None)
                    PROTECTION.pop(bucket, None)
                    for k in [k for k in OBJECTS if k[0] == bucket]:
                        del OBJECTS[k]
        with BUCKET_LOCK:
            return self.forward(environ, start_response, body, gone)

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

        # Bucket operations (a query of only `x-id`, which SDKs add, is no query).
        plain = not [k for k in query if k != "x-id"]
        if not bucket and method == "GET" and "extended" in query:
            return self.list_buckets_extended(environ, start_response, query)
        if bucket and not key:
            if method == "PUT" and plain:
                return self.create_bucket(environ, start_response, bucket, body)
            if method == "HEAD":
                return self.head_bucket(environ, start_response, bucket, body)
            if method == "GET" and "location" in query:
                return self.bucket_location(environ, start_response, bucket, body)
            if method == "DELETE" and plain:
                return self.delete_bucket(environ, start_response, bucket, body)

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
