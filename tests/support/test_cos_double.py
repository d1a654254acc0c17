"""Each documented rule of IBM's legacy immutability API, checked against the double, so the double
cannot drift from shared/IMMUTABILITY.md section (a); and IBM's bucket operations (location
constraints, Key Protect, the extended listing, DeleteBucket). Run: .venv/bin/python -m unittest tests/support/test_cos_double.py"""
import base64
import hashlib
import subprocess
import sys
import time
import unittest
import uuid
import xml.etree.ElementTree as ET
from pathlib import Path

import requests

HERE = Path(__file__).parent
# moto refuses anonymous reads of objects; any signature-shaped header will do.
requests = requests.Session()
requests.headers["Authorization"] = "AWS4-HMAC-SHA256 Credential=test/20260101/us-east-1/s3/aws4_request, SignedHeaders=host, Signature=0"
requests.utils = __import__("requests").utils


S3 = "{http://s3.amazonaws.com/doc/2006-03-01/}"
KP_HEADERS = {"ibm-sse-kp-encryption-algorithm": "AES256",
              "ibm-sse-kp-customer-root-key-crn": "crn:v1:bluemix:public:kms:us-south:a/0123456789abcdef:1111-2222::key:3333-4444"}
SIGNED_US_SOUTH = "AWS4-HMAC-SHA256 Credential=test/20260101/us-south/s3/aws4_request, SignedHeaders=host, Signature=0"


def md5(body):
    return base64.b64encode(hashlib.md5(body).digest()).decode()


class DoubleTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.proc = subprocess.Popen([sys.executable, str(HERE / "cos_double.py")], stdin=subprocess.PIPE,
                                    stdout=subprocess.PIPE, text=True)
        line = cls.proc.stdout.readline()
        cls.url = "http://127.0.0.1:%s" % line.split()[1]

    @classmethod
    def tearDownClass(cls):
        cls.proc.stdin.close()
        cls.proc.wait(timeout=10)

    def bucket(self, protect=True, minimum=0, default=1, maximum=10):
        name = "b" + uuid.uuid4().hex[:12]
        self.assertEqual(requests.put("%s/%s" % (self.url, name)).status_code, 200)
        if protect:
            xml = ("<ProtectionConfiguration><Status>Retention</Status><MinimumRetention><Days>%d</Days></MinimumRetention>"
                   "<DefaultRetention><Days>%d</Days></DefaultRetention><MaximumRetention><Days>%d</Days></MaximumRetention>"
                   "</ProtectionConfiguration>" % (minimum, default, maximum)).encode()
            r = requests.put("%s/%s?protection" % (self.url, name), data=xml, headers={"Content-MD5": md5(xml)})
            self.assertEqual(r.status_code, 200, r.text)
        return name

    def put(self, bucket, key, body=b"data", **headers):
        headers.setdefault("Content-MD5", md5(body))
        return requests.put("%s/%s/%s" % (self.url, bucket, key), data=body, headers=headers)

    def hold(self, bucket, key, verb, hid):
        body = hid.encode() if verb == "add" else b""
        return requests.post("%s/%s/%s?legalHold&%s=%s" % (self.url, bucket, key, verb, requests.utils.quote(hid, safe="")),
                             data=body, headers={"Content-MD5": md5(body)})

    def test_protection_configuration(self):
        b = self.bucket(protect=False)
        r = requests.get("%s/%s?protection" % (self.url, b))
        self.assertIn("<Status>Disabled</Status>", r.text)
        xml = b"<ProtectionConfiguration><Status>Retention</Status><MinimumRetention><Days>5</Days></MinimumRetention><DefaultRetention><Days>1</Days></DefaultRetention><MaximumRetention><Days>9</Days></MaximumRetention></ProtectionConfiguration>"
        self.assertEqual(requests.put("%s/%s?protection" % (self.url, b), data=xml).status_code, 400, "integrity header required")
        self.assertEqual(requests.put("%s/%s?protection" % (self.url, b), data=xml, headers={"Content-MD5": md5(xml)}).status_code, 400, "min <= default")
        b = self.bucket(minimum=0, default=2, maximum=30)
        r = requests.get("%s/%s?protection" % (self.url, b))
        self.assertIn("<DefaultRetention><Days>2</Days></DefaultRetention>", r.text)

    def test_protection_updates_follow_ibm_rules(self):
        def conf(minimum, default, maximum, status="Retention", permanent=None):
            x = ("<ProtectionConfiguration><Status>%s</Status><MinimumRetention><Days>%d</Days></MinimumRetention>"
                 "<DefaultRetention><Days>%d</Days></DefaultRetention><MaximumRetention><Days>%d</Days></MaximumRetention>"
                 % (status, minimum, default, maximum))
            if permanent is not None:
                x += "<EnablePermanentRetention>%s</EnablePermanentRetention>" % ("true" if permanent else "false")
            return (x + "</ProtectionConfiguration>").encode()

        def put(b, body):
            return requests.put("%s/%s?protection" % (self.url, b), data=body, headers={"Content-MD5": md5(body)})

        fresh = self.bucket(protect=False)
        self.assertEqual(put(fresh, conf(0, 0, 365244)).status_code, 400, "beyond 365 243 days")
        self.assertEqual(put(fresh, conf(0, 0, 10, status="Disabled")).status_code, 400, "only Retention")
        self.assertEqual(put(fresh, conf(0, 0, 365243)).status_code, 200, "the widest policy")
        b = self.bucket(minimum=10, default=20, maximum=30)
        self.assertEqual(put(b, conf(10, 20, 30, status="Disabled")).status_code, 403, "never disabled")
        self.assertEqual(put(b, conf(9, 20, 30)).status_code, 403, "minimum never lowered")
        self.assertEqual(put(b, conf(10, 20, 29)).status_code, 403, "maximum never lowered")
        self.assertEqual(put(b, conf(12, 15, 40)).status_code, 200, "raised; the default may move within")
        self.assertEqual(put(b, conf(12, 15, 40, permanent=True)).status_code, 200)
        self.assertEqual(put(b, conf(12, 15, 40, permanent=False)).status_code, 403, "permanent stays")
        r = requests.get("%s/%s?protection" % (self.url, b))
        self.assertIn("<MinimumRetention><Days>12</Days></MinimumRetention>", r.text)
        self.assertIn("<EnablePermanentRetention>true</EnablePermanentRetention>", r.text)

    def test_retention_headers_on_put_and_head(self):
        b = self.bucket(minimum=0, default=1, maximum=10)
        self.assertEqual(self.put(b, "k", **{"Retention-Period": "3600"}).status_code, 200)
        h = requests.head("%s/%s/k" % (self.url, b)).headers
        self.assertEqual(h["Retention-Period"], "3600")
        self.assertEqual(h["Retention-Legal-Hold-Count"], "0")
        self.assertIn("GMT", h["Retention-Expiration-Date"])
        self.assertEqual(self.put(b, "d").status_code, 200)
        self.assertEqual(requests.head("%s/%s/d" % (self.url, b)).headers["Retention-Period"], "86400", "bucket default")
        both = self.put(b, "x", **{"Retention-Period": "10", "Retention-Expiration-Date": "2030-01-01T00:00:00Z"})
        self.assertEqual(both.status_code, 400)
        self.assertEqual(self.put(b, "y", **{"Retention-Period": str(11 * 86400)}).status_code, 400, "beyond maximum")
        self.assertEqual(requests.put("%s/%s/z" % (self.url, b), data=b"no md5").status_code, 400, "integrity required")
        self.assertEqual(self.put(b, "h", **{"Retention-Legal-Hold-ID": "case-1"}).status_code, 200)
        self.assertEqual(requests.head("%s/%s/h" % (self.url, b)).headers["Retention-Legal-Hold-Count"], "1")

    def test_legal_hold_rules(self):
        b = self.bucket()
        self.put(b, "k")
        for hid in ("a", "b-2", "Case(42)!"):
            self.assertEqual(self.hold(b, "k", "add", hid).status_code, 200, hid)
        listed = requests.get("%s/%s/k?legalHold" % (self.url, b)).text
        for hid in ("a", "b-2", "Case(42)!"):
            self.assertIn("<ID>%s</ID>" % hid, listed)
        self.assertEqual(self.hold(b, "k", "add", "a").status_code, 409, "duplicate")
        self.assertEqual(self.hold(b, "k", "add", "bad id").status_code, 400, "characters")
        self.assertEqual(self.hold(b, "k", "add", "x" * 65).status_code, 400, "length")
        self.assertEqual(self.hold(b, "k", "remove", "b-2").status_code, 200)
        self.assertEqual(self.hold(b, "k", "remove", "b-2").status_code, 404)
        for i in range(98):
            self.assertEqual(self.hold(b, "k", "add", "h%d" % i).status_code, 200)
        self.assertEqual(self.hold(b, "k", "add", "one-too-many").status_code, 400, "the 101st hold")
        # An object written before the bucket was protected has no retention.
        plain = self.bucket(protect=False)
        requests.put("%s/%s/old" % (self.url, plain), data=b"x")
        xml = b"<ProtectionConfiguration><Status>Retention</Status><MinimumRetention><Days>0</Days></MinimumRetention><DefaultRetention><Days>1</Days></DefaultRetention><MaximumRetention><Days>2</Days></MaximumRetention></ProtectionConfiguration>"
        requests.put("%s/%s?protection" % (self.url, plain), data=xml, headers={"Content-MD5": md5(xml)})
        self.assertEqual(self.hold(plain, "old", "add", "a").status_code, 400)
        self.assertEqual(requests.get("%s/%s/old?legalHold" % (self.url, plain)).status_code, 404)

    def test_extend_retention_only_grows(self):
        b = self.bucket(maximum=10)
        self.put(b, "k", **{"Retention-Period": "3600"})
        url = "%s/%s/k?extendRetention" % (self.url, b)
        self.assertEqual(requests.post(url, headers={"New-Retention-Period": "7200"}).status_code, 200)
        self.assertEqual(requests.head("%s/%s/k" % (self.url, b)).headers["Retention-Period"], "7200")
        self.assertEqual(requests.post(url, headers={"New-Retention-Period": "60"}).status_code, 400, "shorter")
        self.assertEqual(requests.post(url, headers={"New-Retention-Period": str(11 * 86400)}).status_code, 400, "beyond max")
        self.assertEqual(requests.post(url).status_code, 400, "no header")
        two = {"New-Retention-Period": "9000", "Additional-Retention-Period": "10"}
        self.assertEqual(requests.post(url, headers=two).status_code, 400, "two headers")
        self.assertEqual(requests.post(url, headers={"Additional-Retention-Period": "100"}).status_code, 200)
        self.assertEqual(requests.head("%s/%s/k" % (self.url, b)).headers["Retention-Period"], "7300")

    def test_delete_and_overwrite_refused_while_protected(self):
        b = self.bucket(minimum=0, default=0, maximum=10)
        self.put(b, "short", **{"Retention-Period": "2"})
        self.assertEqual(requests.delete("%s/%s/short" % (self.url, b)).status_code, 403)
        self.assertEqual(self.put(b, "short", b"new").status_code, 403, "overwrite refused")
        self.put(b, "held", **{"Retention-Period": "0", "Retention-Legal-Hold-ID": "keep"})
        self.assertEqual(requests.delete("%s/%s/held" % (self.url, b)).status_code, 403, "held")
        time.sleep(2.5)
        self.assertIn(requests.delete("%s/%s/short" % (self.url, b)).status_code, (200, 204), "expired, no holds")
        self.hold(b, "held", "remove", "keep")
        self.assertIn(requests.delete("%s/%s/held" % (self.url, b)).status_code, (200, 204))

    def test_stats_count_object_writes_by_key_refused_ones_included(self):
        b = self.bucket(minimum=0, default=1, maximum=10)
        self.assertEqual(self.put(b, "w").status_code, 200)
        self.assertEqual(self.put(b, "w", b"again").status_code, 403, "retained: refused")
        stats = requests.get("%s/__double/stats" % self.url).json()
        self.assertEqual(stats["writes"]["%s/w" % b], 2)

    def test_delete_objects_refuses_retained_keys_one_by_one(self):
        b = self.bucket(minimum=0, default=0, maximum=10)
        self.assertEqual(self.put(b, "free").status_code, 200)
        self.assertEqual(self.put(b, "kept", **{"Retention-Period": "3600"}).status_code, 200)
        body = ("<Delete><Quiet>true</Quiet><Object><Key>free</Key></Object><Object><Key>kept</Key></Object>"
                "<Object><Key>never-there</Key></Object></Delete>").encode()
        r = requests.post("%s/%s?delete" % (self.url, b), data=body, headers={"Content-MD5": md5(body)})
        self.assertEqual(r.status_code, 200, r.text)
        self.assertIn("<Key>kept</Key><Code>AccessDenied</Code>", r.text)
        self.assertNotIn("free", r.text, "quiet: deleted keys are not listed")
        self.assertNotIn("never-there", r.text, "a missing key counts as deleted, as in S3")
        self.assertEqual(requests.head("%s/%s/free" % (self.url, b)).status_code, 404)
        self.assertEqual(requests.head("%s/%s/kept" % (self.url, b)).status_code, 200)
        self.assertEqual(requests.post("%s/%s?delete" % (self.url, b), data=body).status_code, 400, "needs an integrity header")
        stats = requests.get("%s/__double/stats" % self.url).json()
        self.assertEqual(stats["batch_deletes"][b], 2)

    # IBM bucket operations: location constraints, Key Protect, extended listing, delete.

    def create(self, name, location=None, xmlns=True, **headers):
        body = b""
        if location is not None:
            body = ('<CreateBucketConfiguration%s><LocationConstraint>%s</LocationConstraint></CreateBucketConfiguration>'
                    % (' xmlns="http://s3.amazonaws.com/doc/2006-03-01/"' if xmlns else "", location)).encode()
        return requests.put("%s/%s" % (self.url, name), data=body, headers=headers)

    def location(self, name):
        r = requests.get("%s/%s?location" % (self.url, name))
        self.assertEqual(r.status_code, 200, r.text)
        return ET.fromstring(r.content).text

    def test_create_bucket_with_location_constraint_and_key_protect(self):
        b = "kp" + uuid.uuid4().hex[:12]
        r = self.create(b, "us-south-cold", **KP_HEADERS)
        self.assertEqual(r.status_code, 200, r.text)
        h = requests.head("%s/%s" % (self.url, b)).headers
        self.assertEqual(h["ibm-sse-kp-enabled"], "true")
        self.assertEqual(h["ibm-sse-kp-crk-id"], KP_HEADERS["ibm-sse-kp-customer-root-key-crn"])
        r = requests.get("%s/%s?location" % (self.url, b))
        self.assertIn('<LocationConstraint xmlns="http://s3.amazonaws.com/doc/2006-03-01/">us-south-cold</LocationConstraint>', r.text)
        plain = "pl" + uuid.uuid4().hex[:12]
        self.assertEqual(self.create(plain).status_code, 200)
        h = requests.head("%s/%s" % (self.url, plain)).headers
        self.assertEqual(h["ibm-sse-kp-enabled"], "false")
        self.assertNotIn("ibm-sse-kp-crk-id", h)
        self.assertEqual(self.location(plain), "us-south-standard", "the default location constraint")
        other = "eu" + uuid.uuid4().hex[:12]
        self.assertEqual(self.create(other, "eu-de-onerate_active", xmlns=False).status_code, 200, "no namespace")
        self.assertEqual(self.location(other), "eu-de-onerate_active")
        # Signed for an IBM region (moto alone refuses a create signed for any region but us-east-1).
        south = "so" + uuid.uuid4().hex[:12]
        self.assertEqual(self.create(south, "jp-tok-smart", Authorization=SIGNED_US_SOUTH).status_code, 200)
        self.assertEqual(self.location(south), "jp-tok-smart")
        missing = requests.get("%s/nx%s?location" % (self.url, uuid.uuid4().hex[:12]))
        self.assertEqual(missing.status_code, 404)
        self.assertIn("<Code>NoSuchBucket</Code>", missing.text)
        self.assertEqual(requests.head("%s/nx%s" % (self.url, uuid.uuid4().hex[:12])).status_code, 404)

    def test_create_bucket_refusals(self):
        crn = KP_HEADERS["ibm-sse-kp-customer-root-key-crn"]
        cases = [
            (dict(location="us-south"), "InvalidLocationConstraint"),
            (dict(location="us-south-glacier"), "InvalidLocationConstraint"),
            (dict(location="US-SOUTH-COLD"), "InvalidLocationConstraint"),
            (dict(location="us-east-1"), "InvalidLocationConstraint"),
            (dict(**{"ibm-sse-kp-encryption-algorithm": "AES128", "ibm-sse-kp-customer-root-key-crn": crn}), "InvalidArgument"),
            (dict(**{"ibm-sse-kp-customer-root-key-crn": crn}), "InvalidArgument"),
            (dict(**{"ibm-sse-kp-encryption-algorithm": "AES256"}), "InvalidArgument"),
            (dict(**{"ibm-sse-kp-encryption-algorithm": "AES256", "ibm-sse-kp-customer-root-key-crn": "not-a-crn"}), "InvalidArgument"),
            (dict(**{"ibm-sse-kp-encryption-algorithm": "AES256",
                     "ibm-sse-kp-customer-root-key-crn": "crn:v1:bluemix:public:cloud-object-storage:global:a/1::key:2"}), "InvalidArgument"),
            (dict(**{"ibm-sse-kp-encryption-algorithm": "AES256",
                     "ibm-sse-kp-customer-root-key-crn": "crn:v1:bluemix:public:kms:us-south:a/1:2::"}), "InvalidArgument"),
        ]
        for kwargs, code in cases:
            b = "rf" + uuid.uuid4().hex[:12]
            r = self.create(b, **kwargs)
            self.assertEqual(r.status_code, 400, (kwargs, r.text))
            self.assertIn("<Code>%s</Code>" % code, r.text, kwargs)
            self.assertEqual(requests.head("%s/%s" % (self.url, b)).status_code, 404, "%s: not created" % kwargs)
        hs = "hs" + uuid.uuid4().hex[:12]
        hpcs = {"ibm-sse-kp-encryption-algorithm": "AES256",
                "ibm-sse-kp-customer-root-key-crn": "crn:v1:bluemix:public:hs-crypto:us-south:a/1:2:key:3"}
        self.assertEqual(self.create(hs, **hpcs).status_code, 200, "a Hyper Protect Crypto Services key")
        self.assertEqual(self.create("ab").status_code, 400, "moto's bucket name rules")
        # IBM bucket names are global: any existing name is refused, by whatever request.
        b = "re" + uuid.uuid4().hex[:12]
        self.assertEqual(self.create(b, "us-south-vault").status_code, 200)
        for again in (dict(), dict(location="us-south-vault"), dict(location="eu-de-cold"), dict(Authorization=SIGNED_US_SOUTH)):
            r = self.create(b, **again)
            self.assertEqual(r.status_code, 409, again)
            self.assertIn("<Code>BucketAlreadyExists</Code>", r.text)
        self.assertEqual(self.location(b), "us-south-vault", "a refused re-create changes nothing")
        stats = requests.get("%s/__double/stats" % self.url).json()
        self.assertEqual(stats["bucket_creates"][b], 5, "refused creates are counted")

    def test_list_buckets_extended(self):
        prefix = "ls" + uuid.uuid4().hex[:10]
        names = {prefix + "-a": "us-south-cold", prefix + "-b": None, prefix + "-c": "eu-gb-flex"}
        for name, loc in names.items():
            self.assertEqual(self.create(name, loc).status_code, 200)
        r = requests.get("%s/?extended" % self.url)
        self.assertEqual(r.status_code, 200, r.text)
        root = ET.fromstring(r.content)
        self.assertEqual(root.tag, S3 + "ListAllMyBucketsResult", "moto's namespace kept")
        self.assertEqual(root.findtext(S3 + "IsTruncated"), "false")
        listed = {}
        for b in root.iter(S3 + "Bucket"):
            tags = [c.tag[len(S3):] for c in b]
            self.assertEqual(tags[:3], ["Name", "CreationDate", "LocationConstraint"], "each bucket has its constraint")
            listed[b.findtext(S3 + "Name")] = b.findtext(S3 + "LocationConstraint")
        for name, loc in names.items():
            self.assertEqual(listed[name], loc or "us-south-standard", name)
        # The plain listing is moto's, unchanged.
        plain = ET.fromstring(requests.get("%s/" % self.url).content)
        plain_names = [b.findtext(S3 + "Name") for b in plain.iter(S3 + "Bucket")]
        self.assertTrue(set(names) <= set(plain_names))
        self.assertIsNone(plain.find(".//" + S3 + "LocationConstraint"))
        # Pages: prefix, max-keys, marker and NextMarker.
        seen, marker = [], ""
        for _ in range(5):
            r = requests.get("%s/?extended&prefix=%s&max-keys=2&marker=%s" % (self.url, prefix, marker))
            page = ET.fromstring(r.content)
            seen += [b.findtext(S3 + "Name") for b in page.iter(S3 + "Bucket")]
            self.assertEqual(page.findtext(S3 + "Prefix"), prefix)
            if page.findtext(S3 + "IsTruncated") != "true":
                self.assertIsNone(page.find(S3 + "NextMarker"))
                break
            marker = page.findtext(S3 + "NextMarker")
            self.assertEqual(marker, seen[-1])
        self.assertEqual(seen, sorted(names), "two pages, sorted by name")
        self.assertEqual(requests.get("%s/?extended&max-keys=x" % self.url).status_code, 400)

    def test_delete_bucket(self):
        b = "dl" + uuid.uuid4().hex[:12]
        self.assertEqual(self.create(b, "us-south-cold", **KP_HEADERS).status_code, 200)
        self.assertEqual(requests.put("%s/%s/k" % (self.url, b), data=b"x").status_code, 200)
        r = requests.delete("%s/%s" % (self.url, b))
        self.assertEqual(r.status_code, 409, r.text)
        self.assertIn("<Code>BucketNotEmpty</Code>", r.text)
        h = requests.head("%s/%s" % (self.url, b))
        self.assertEqual(h.status_code, 200, "still there")
        self.assertEqual(h.headers["ibm-sse-kp-enabled"], "true", "and still Key Protect")
        self.assertEqual(self.location(b), "us-south-cold")
        self.assertIn(requests.delete("%s/%s/k" % (self.url, b)).status_code, (200, 204))
        self.assertEqual(requests.delete("%s/%s" % (self.url, b)).status_code, 204)
        self.assertEqual(requests.head("%s/%s" % (self.url, b)).status_code, 404)
        listing = ET.fromstring(requests.get("%s/?extended" % self.url).content)
        self.assertNotIn(b, [n.text for n in listing.iter(S3 + "Name")])
        self.assertEqual(requests.delete("%s/%s" % (self.url, b)).status_code, 404, "NoSuchBucket")
        # Created again without Key Protect or a constraint: nothing of the old bucket is left.
        self.assertEqual(self.create(b).status_code, 200)
        self.assertEqual(requests.head("%s/%s" % (self.url, b)).headers["ibm-sse-kp-enabled"], "false")
        self.assertEqual(self.location(b), "us-south-standard")
        stats = requests.get("%s/__double/stats" % self.url).json()
        self.assertEqual(stats["bucket_deletes"][b], 3)
        # An empty bucket with a retention policy may go; its policy goes with it.
        p = self.bucket(minimum=0, default=1, maximum=10)
        self.assertEqual(requests.delete("%s/%s" % (self.url, p)).status_code, 204)
        self.assertEqual(self.create(p).status_code, 200)
        self.assertIn("<Status>Disabled</Status>", requests.get("%s/%s?protection" % (self.url, p)).text)


if __name__ == "__main__":
    unittest.main()
