"""47 metrics everywhere: parley-api serves Prometheus metrics on its own
listener (requests by route and status, latency histograms, store errors,
hash-pool waits), and every metric the Grafana dashboard and the alert rules
name is one the daemons export (deploy/grafana, deploy/prometheus)."""

import http.client
import json
import os
import re

import yaml

import parley_test
import rest
from rest import expect

API_METRICS = int(os.environ.get("PARLEY_API_METRICS_PORT") or int(parley_test.STACK["http"]) + 4)
NOTIFY_METRICS = int(os.environ.get("PARLEY_NOTIFY_METRICS_PORT") or int(parley_test.STACK["http"]) + 3)
RELAY = int(parley_test.STACK["relay"])
DEPLOY = os.path.join(parley_test.TOP, "deploy")
SEND_ROUTE = "POST /api/v1/conversations/{id}/messages"


def scrape(port):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request("GET", "/metrics")
        resp = conn.getresponse()
        body = resp.read().decode()
        assert resp.status == 200, (port, resp.status, body)
        assert resp.getheader("Content-Type").startswith("text/plain"), resp.getheader("Content-Type")
        return body
    finally:
        conn.close()


def families(text):
    """{name: type} from the "# TYPE" lines."""
    return dict(re.findall(r"^# TYPE (\S+) (\S+)$", text, re.M))


def series(text, name):
    """{labels text: value} of a family's samples."""
    return {m.group(1): float(m.group(2))
            for m in re.finditer(r"^%s\{(.*)\} (\S+)$" % re.escape(name), text, re.M)}


def exported():
    names = {}
    for port in (API_METRICS, NOTIFY_METRICS, RELAY):
        names.update(families(scrape(port)))
    return names


def names_in(expr):
    return set(re.findall(r"\bparley_[a-z0-9_]+", expr))


def known(name, types):
    if name in types:
        return True
    for suffix, kinds in (("_bucket", ("histogram",)), ("_sum", ("histogram", "summary")),
                          ("_count", ("histogram", "summary"))):
        if name.endswith(suffix) and types.get(name[: -len(suffix)]) in kinds:
            return True
    return False


def routes():
    """The route table's "METHOD /pattern" strings, from fcgi/routes.c."""
    with open(os.path.join(parley_test.TOP, "fcgi", "routes.c")) as f:
        text = f.read()
    return {"%s %s" % (m, "/api/v1" + p) for m, p in re.findall(r'\{ "([A-Z]+)", V1 "([^"]+)"', text)}


def test_api_counts_requests_by_route_and_status():
    a, b = rest.new_user("ma"), rest.new_user("mb")
    conv = rest.direct(a, b)
    before = series(scrape(API_METRICS), "parley_api_requests_total")
    key = 'route="%s",status="201"' % SEND_ROUTE
    for i in range(3):
        rest.send(a, conv, "counted %d" % i)
    expect(a.call("GET", "/conversations/999999999"), 404)
    text = scrape(API_METRICS)
    after = series(text, "parley_api_requests_total")
    assert after.get(key, 0) - before.get(key, 0) == 3, (before.get(key), after.get(key))
    missing = 'route="GET /api/v1/conversations/{id}",status="404"'
    assert after.get(missing, 0) >= 1, sorted(after)
    count = series(text, "parley_api_request_duration_seconds_count")
    assert count['route="%s"' % SEND_ROUTE] >= 3, count
    inf = series(text, "parley_api_request_duration_seconds_bucket")
    assert inf['route="%s",le="+Inf"' % SEND_ROUTE] == count['route="%s"' % SEND_ROUTE]
    types = families(text)
    for name in ("parley_api_db_errors_total", "parley_api_redis_errors_total",
                 "parley_api_hash_waits_total", "parley_api_hash_refusals_total"):
        assert types.get(name) == "counter", (name, types)


def test_api_metrics_listener_serves_only_metrics():
    conn = http.client.HTTPConnection("127.0.0.1", API_METRICS, timeout=10)
    conn.request("GET", "/other")
    assert conn.getresponse().status == 404
    conn.close()


def test_dashboard_names_only_exported_metrics():
    types = exported()
    with open(os.path.join(DEPLOY, "grafana", "parley-dashboard.json")) as f:
        dash = json.load(f)
    exprs = [t["expr"] for p in dash["panels"] for t in p.get("targets", [])]
    assert len(exprs) >= 20, len(exprs)
    named = set().union(*(names_in(e) for e in exprs))
    unknown = sorted(n for n in named if not known(n, types))
    assert unknown == [], "the dashboard names metrics nobody exports: %r" % unknown
    # Every daemon is on it.
    for prefix in ("parley_api_", "parley_relay_", "parley_notify_"):
        assert any(n.startswith(prefix) for n in named), prefix
    bad = sorted(r for e in exprs for r in re.findall(r'route="([^"]+)"', e) if r not in routes())
    assert bad == [], bad


def test_alert_rules_name_only_exported_metrics():
    types = exported()
    with open(os.path.join(DEPLOY, "prometheus", "parley-alerts.yml")) as f:
        rules = yaml.safe_load(f)
    alerts = {r["alert"]: r for g in rules["groups"] for r in g["rules"]}
    for needed in ("ParleyRelayDown", "ParleyPushesFailing", "ParleyPostgresDown",
                   "ParleyRedisDown", "ParleySendLatencyHigh"):
        assert needed in alerts, sorted(alerts)
    for name, rule in alerts.items():
        assert rule.get("expr") and rule.get("labels", {}).get("severity"), rule
        assert rule.get("annotations", {}).get("summary"), rule
        unknown = sorted(n for n in names_in(rule["expr"]) if not known(n, types))
        assert unknown == [], "%s names metrics nobody exports: %r" % (name, unknown)
        bad = [r for r in re.findall(r'route="([^"]+)"', rule["expr"]) if r not in routes()]
        assert bad == [], (name, bad)


parley_test.run()
