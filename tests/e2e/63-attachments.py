"""63 attachments (doc/protocol.md "Attachments"): POST /attachments stores
the raw body, its type sniffed from the bytes, with width, height and a
thumbnail for images; hostile images are answered at once and never hurt
the API; the web server sends the file (ranges, ETag, 304) to the uploader
and to members of a conversation where it was posted, and to no one else;
sends take attachment_ids by the rules; "parley-admin attachments prune"
removes old uploads never posted, and their files."""
# also through apache

import hashlib
import os
import random
import secrets
import subprocess
import time

import attach
import parley_test
import rest
from attach import upload, uploaded
from parley_test import assert_error, request
from rest import expect

A = rest.new_user("ta")
B = rest.new_user("tb")
STRANGER = rest.new_user("tc")
DM = rest.direct(A, B)

BUILD = os.environ.get("PARLEY_BUILDDIR") or os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")
ADMIN = os.path.join(BUILD, "admin", "parley-admin")
CONF = os.path.join(rest.RUNDIR, "etc", "parley.conf")
FILES = os.path.join(rest.RUNDIR, "attachments")
LIMIT = 26214400   # [api] max_attachment_bytes, and the web servers' limit


def get(user, aid, thumbnail=False, headers=None):
    path = "/api/v1/attachments/%d%s" % (aid, "/thumbnail" if thumbnail else "")
    return request("GET", path, token=user.token if user else None, headers=headers)


def raw_get(user, aid, thumbnail=False, headers=None):
    """GET returning the body as bytes (request() would decode it)."""
    import http.client
    import urllib.parse
    url = urllib.parse.urlsplit(parley_test.BASE_URL)
    conn = http.client.HTTPConnection(url.hostname, url.port, timeout=10)
    hdrs = dict(headers or {}, Authorization="Bearer " + user.token)
    try:
        conn.request("GET", url.path + "/api/v1/attachments/%d%s" % (aid, "/thumbnail" if thumbnail else ""),
                     headers=hdrs)
        resp = conn.getresponse()
        return resp.status, resp.headers, resp.read()
    finally:
        conn.close()


def post(user, conv, body="", ids=(), status=201):
    payload = {"client_msg_id": secrets.token_hex(8), "body": body, "attachment_ids": list(ids)}
    return expect(user.call("POST", "/conversations/%d/messages" % conv, payload), status, "send")


def psql(sql):
    subprocess.run(["psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", parley_test.PG, "-c", sql],
                   check=True, capture_output=True, text=True)


def storage_of(aid):
    out = subprocess.run(["psql", "-X", "-qAt", parley_test.PG, "-c",
                          "SELECT storage FROM attachments WHERE id = %d" % aid],
                         check=True, capture_output=True, text=True).stdout.strip()
    return out


def test_png_gets_its_size_sha256_and_a_thumbnail():
    data = attach.png(640, 480, seed=1)
    a = uploaded(A, data, "image/png", "holiday photo.png")
    assert a["content_type"] == "image/png", a
    assert a["size"] == len(data) and a["sha256"] == hashlib.sha256(data).hexdigest(), a
    assert a["name"] == "holiday photo.png", a
    assert (a["width"], a["height"]) == (640, 480), a
    assert a["thumbnail"] == {"width": 320, "height": 240}, a
    assert isinstance(a["id"], int) and a["id"] > 0, a


def test_jpeg_gif_and_webp_are_images():
    for seed_name, ctype in (("jpeg", "image/jpeg"), ("gif", "image/gif"), ("webp", "image/webp"),
                             ("jpeg-progressive", "image/jpeg")):
        a = uploaded(A, attach.seed(seed_name), "application/octet-stream")
        assert a["content_type"] == ctype, (seed_name, a)
        assert (a["width"], a["height"]) == (24, 16), (seed_name, a)
        # Small images keep their size in the thumbnail: never enlarged.
        assert a["thumbnail"] == {"width": 24, "height": 16}, (seed_name, a)


def test_exif_rotated_jpeg_reports_its_upright_size():
    a = uploaded(A, attach.seed("jpeg-exif-rotated"), "image/jpeg")
    assert (a["width"], a["height"]) == (16, 24), a
    assert a["thumbnail"] == {"width": 16, "height": 24}, a


def test_text_file_keeps_its_harmless_type():
    a = uploaded(A, b"shopping list\n- milk\n", "text/plain; charset=utf-8", "list.txt")
    assert a["content_type"] == "text/plain" and a["name"] == "list.txt", a
    assert "width" not in a and "thumbnail" not in a, a


def test_the_type_comes_from_the_bytes_not_the_header():
    a = uploaded(A, attach.png(32, 32, seed=2), "text/plain")
    assert a["content_type"] == "image/png" and a["width"] == 32, a
    html = b"<html><script>alert(document.cookie)</script></html>"
    for claimed in ("image/png", "text/html", "image/svg+xml"):
        a = uploaded(A, html, claimed, "x.html")
        assert a["content_type"] == "application/octet-stream", (claimed, a)
        assert "width" not in a and "thumbnail" not in a, a
    a = uploaded(A, b"just bytes")
    assert a["content_type"] == "application/octet-stream" and a["name"] == "", a


def test_file_names_are_cleaned():
    a = uploaded(A, b"x", "text/plain", "../../etc/passwd")
    assert a["name"] == ".._.._etc_passwd", a
    a = uploaded(A, b"x", "text/plain", "\u202egpj.exe\r\n")
    assert a["name"] == "gpj.exe", a
    a = uploaded(A, b"x", "text/plain", "\u65e5" * 300)
    assert a["name"] == "\u65e5" * 255, a
    assert_error(upload(A, b"x", headers={"X-Filename": "bad%FFname"}), 400, "bad_request")


def test_over_the_limit_is_413_in_the_json_shape():
    assert_error(upload(A, b"\0" * (LIMIT + 1), "application/octet-stream"), 413, "too_large")
    # Other routes keep their own, smaller limit.
    assert_error(A.call("POST", "/blocks", "{" + " " * 70000 + "}",
                        headers={"Content-Type": "application/json"}), 413, "too_large")


def test_at_the_limit_is_taken():
    a = uploaded(A, b"\0" * LIMIT, "application/octet-stream")
    assert a["size"] == LIMIT, a


def test_empty_upload_is_400():
    assert_error(upload(A, b"", "image/png"), 400, "bad_request")


def test_upload_needs_a_token():
    assert_error(request("POST", "/api/v1/attachments", body=b"abc"), 401, "unauthorized")


def api_alive():
    status, _, body = request("GET", "/health")
    return status == 200 and body.get("status") == "ok"


def test_hostile_images_are_answered_fast_and_kept_as_files():
    noise = random.Random(63)
    broken = {
        "truncated PNG": attach.png(640, 480, seed=3)[:2000],
        "100000 x 100000 PNG": attach.png_header(100000, 100000, b"x" * 100),
        "PNG of garbage pixels": attach.png_header(64, 64, noise.randbytes(500)),
        "GIF signature only": b"GIF89a" + noise.randbytes(64),
        "WebP signature only": b"RIFF\x10\0\0\0WEBPVP8 " + noise.randbytes(32),
        "JPEG of 300 scans": attach.seed("jpeg")[:-2] + b"\xff\xda\0\x08\x01\x01\0\0\x3f\0" * 300,
    }
    # Whatever a decoder makes of these, the answer is quick and consistent.
    odd = {
        "JPEG tables then noise": attach.seed("jpeg")[:400] + noise.randbytes(3000),
        "PNG rows cut short": attach.png(64, 64, seed=9)[:-40] + attach.png(1, 1)[-12:],
    }
    for what, data in list(broken.items()) + list(odd.items()):
        start = time.monotonic()
        a = uploaded(A, data, "image/png", what)
        took = time.monotonic() - start
        assert took < 5, "%s took %.1f s" % (what, took)
        assert api_alive(), "the API stopped answering after " + what
        if what in broken or not a["content_type"].startswith("image/"):
            assert a["content_type"] == "application/octet-stream", (what, a)
            assert "width" not in a and "thumbnail" not in a, (what, a)
        else:
            assert a["width"] > 0 and a["thumbnail"]["width"] > 0, (what, a)


def test_large_flat_image_is_decoded_in_bounded_memory():
    # 25 megapixels in 80 KB: decoded as a stream, not held whole.
    a = uploaded(A, attach.flat_png(5000, 5000), "image/png")
    assert (a["width"], a["height"]) == (5000, 5000), a
    assert a["thumbnail"] == {"width": 320, "height": 320}, a
    assert api_alive()


def test_uploader_gets_the_bytes_with_etag_ranges_and_304():
    data = attach.png(300, 200, seed=4)
    a = uploaded(A, data, "image/png", "chart.png")
    status, headers, body = raw_get(A, a["id"])
    assert status == 200 and body == data, status
    assert headers["Content-Type"] == "image/png", headers
    assert int(headers["Content-Length"]) == len(data), headers
    etag = '"%s"' % a["sha256"]
    assert headers["ETag"] == etag, headers
    assert headers["X-Content-Type-Options"] == "nosniff", headers
    assert headers["Content-Disposition"].startswith("inline"), headers
    assert "private" in headers["Cache-Control"], headers
    assert "X-Accel-Redirect" not in headers and "X-Sendfile" not in headers, headers
    status, headers, body = raw_get(A, a["id"], headers={"Range": "bytes=10-19"})
    assert status == 206 and body == data[10:20], (status, body)
    assert headers["Content-Range"] == "bytes 10-19/%d" % len(data), headers
    status, headers, body = raw_get(A, a["id"], headers={"If-None-Match": etag})
    assert status == 304 and body == b"", status
    status, _, body = raw_get(A, a["id"], headers={"If-None-Match": '"something-else"'})
    assert status == 200 and body == data, status
    status, headers, thumb = raw_get(A, a["id"], thumbnail=True)
    assert status == 200 and headers["Content-Type"] == "image/jpeg", headers
    assert thumb[:3] == b"\xff\xd8\xff", thumb[:8]
    assert headers["ETag"] != etag, headers


def test_other_files_download_as_attachments_with_their_name():
    a = uploaded(A, b"%PDF-1.4\n", "application/pdf", "r\u00e9sum\u00e9.pdf")
    status, headers, body = raw_get(A, a["id"])
    assert status == 200 and body == b"%PDF-1.4\n", status
    assert headers["Content-Type"] == "application/pdf", headers
    disp = headers["Content-Disposition"]
    assert disp.startswith("attachment;") and "filename*=UTF-8''r%C3%A9sum%C3%A9.pdf" in disp, disp
    assert "sandbox" in headers["Content-Security-Policy"], headers
    assert_error(get(A, a["id"], thumbnail=True), 404, "not_found")


def test_strangers_get_404():
    a = uploaded(A, attach.png(20, 20, seed=5), "image/png")
    assert_error(get(STRANGER, a["id"]), 404, "not_found")
    assert_error(get(STRANGER, a["id"], thumbnail=True), 404, "not_found")
    assert_error(get(B, a["id"]), 404, "not_found")   # not posted yet
    assert_error(get(A, 10 ** 12), 404, "not_found")
    assert_error(get(None, a["id"]), 401, "unauthorized")


def test_files_are_served_only_through_the_api():
    a = uploaded(A, b"secret plans", "text/plain")
    storage = storage_of(a["id"])
    for path in ("/_parley/attachments/" + storage, "/_parley/attachments/tmp/", "/attachments/" + storage):
        status, _, body = request("GET", path, token=A.token)
        assert status == 404 and "secret" not in str(body), (path, status, body)
    # A file gone from disk (a crash between the row and the rename) is a 404.
    os.unlink(os.path.join(FILES, storage))
    assert_error(get(A, a["id"]), 404, "not_found")


def test_posted_attachment_is_visible_to_members_only():
    data = attach.png(100, 50, seed=6)
    a = uploaded(A, data, "image/png", "pic.png")
    m = post(A, DM, "look", [a["id"]])
    want = {k: v for k, v in a.items() if k != "sha256"}
    assert m["attachments"] == [want], m
    hist = B.get("/conversations/%d/messages?limit=5" % DM)["messages"]
    assert [x["attachments"] for x in hist if x["message_id"] == m["message_id"]] == [[want]], hist
    status, _, body = raw_get(B, a["id"])
    assert status == 200 and body == data, status
    status, headers, _ = raw_get(B, a["id"], thumbnail=True)
    assert status == 200 and headers["Content-Type"] == "image/jpeg", status
    assert_error(get(STRANGER, a["id"]), 404, "not_found")
    # A deleted message takes its attachments from the members' view.
    expect(A.call("DELETE", "/conversations/%d/messages/%d" % (DM, m["message_id"])), 204)
    assert_error(get(B, a["id"]), 404, "not_found")


def test_send_rules_for_attachment_ids():
    a = uploaded(A, b"one", "text/plain", "one.txt")
    m = post(A, DM, "", [a["id"]])
    assert m["body"] == "" and [x["id"] for x in m["attachments"]] == [a["id"]], m
    assert_error(A.call("POST", "/conversations/%d/messages" % DM, {
        "client_msg_id": secrets.token_hex(8), "body": "again", "attachment_ids": [a["id"]]}), 400, "bad_request")
    theirs = uploaded(B, b"theirs", "text/plain")
    assert_error(A.call("POST", "/conversations/%d/messages" % DM, {
        "client_msg_id": secrets.token_hex(8), "body": "", "attachment_ids": [theirs["id"]]}), 400, "bad_request")
    many = [uploaded(A, b"f%d" % i, "text/plain")["id"] for i in range(11)]
    assert_error(A.call("POST", "/conversations/%d/messages" % DM, {
        "client_msg_id": secrets.token_hex(8), "body": "", "attachment_ids": many}), 400, "bad_request")
    m = post(A, DM, "", many[:10])
    assert [x["id"] for x in m["attachments"]] == many[:10], m


def admin(*args):
    p = subprocess.run([ADMIN, "-c", CONF, *args], stdin=subprocess.DEVNULL,
                       capture_output=True, text=True, timeout=60)
    return p.returncode, p.stdout, p.stderr


def test_prune_removes_old_unposted_uploads_and_keeps_posted_ones():
    old = uploaded(A, attach.png(40, 40, seed=7), "image/png")
    fresh = uploaded(A, b"fresh", "text/plain")
    posted = uploaded(A, attach.png(40, 40, seed=8), "image/png")
    post(A, DM, "kept", [posted["id"]])
    psql("UPDATE attachments SET created_at = now() - interval '2 days' WHERE id IN (%d, %d)"
         % (old["id"], posted["id"]))
    old_file = os.path.join(FILES, storage_of(old["id"]))
    posted_file = os.path.join(FILES, storage_of(posted["id"]))
    assert os.path.exists(old_file) and os.path.exists(old_file + ".thumb"), old_file
    # A temporary file of an upload that died an hour ago, and one in progress.
    os.makedirs(os.path.join(FILES, "tmp"), exist_ok=True)
    dead = os.path.join(FILES, "tmp", secrets.token_hex(16) + ".part")
    live = os.path.join(FILES, "tmp", secrets.token_hex(16) + ".part")
    for path in (dead, live):
        with open(path, "wb") as f:
            f.write(b"partial")
    os.utime(dead, (time.time() - 7200, time.time() - 7200))
    try:
        rc, out, err = admin("attachments", "prune")
        assert rc == 0, (rc, out, err)
        assert "removed attachment %d:" % old["id"] in out, out
        assert "removed temporary file tmp/%s" % os.path.basename(dead) in out, out
        assert not os.path.exists(old_file) and not os.path.exists(old_file + ".thumb"), old_file
        assert not os.path.exists(dead) and os.path.exists(live)
        assert os.path.exists(posted_file) and os.path.exists(posted_file + ".thumb")
        assert_error(get(A, old["id"]), 404, "not_found")
        expect(get(A, fresh["id"]), 200, "fresh upload")
        expect(get(B, posted["id"]), 200, "posted upload")
        # Pruned means gone: it can no longer be posted.
        assert_error(A.call("POST", "/conversations/%d/messages" % DM, {
            "client_msg_id": secrets.token_hex(8), "body": "", "attachment_ids": [old["id"]]}),
            400, "bad_request")
    finally:
        if os.path.exists(live):
            os.unlink(live)
    rc, out, err = admin("attachments", "prune", "--older-than", "soon")
    assert rc == 2 and "--older-than" in err, (rc, out, err)


parley_test.run()
