"""Each documented rule of IBM's legacy immutability API, checked against the double, so the double
cannot drift from shared/IMMUTABILITY.md section (a). Run: .venv/bin/python -m unittest tests/support/test_cos_double.py"""
import base64
import hashlib
import subprocess
import sys
import time
import unittest
import uuid
from pathlib import Path

import requests

HERE = Path(__file__).parent
# moto refuses anonymous reads of objects; any signature-shaped header will do.
requests = requests.Session()
requests.headers["Authorization"] = "AWS4-HMAC-SHA256 Credential=test/20260101/us-east-1/s3/aws4_request, SignedHeaders=host, Signature=0"
requests.utils = __import__("requests").utils


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


if __name__ == "__main__":
    unittest.main()
