// tests/fake/push-server.mjs: a fake APNs, FCM and OAuth2 token endpoint for
// Parley's end-to-end tests, on one HTTP/2-over-TLS port (Node's http2).
//
//   node push-server.mjs --port N --cert C --key K --apns-pub P --key-id KID
//        --team-id T --topic B --fcm-pub P --client-email E --project-id ID
//        [--fcm-token-lifetime S]
//
// It checks requests the way the real services do and answers like them:
//   POST /3/device/<token>     APNs: ES256 provider JWT (kid, iss, iat, and
//                              the signature against --apns-pub), apns-topic,
//                              apns-push-type, apns-priority, JSON body
//   POST /token                OAuth2 jwt-bearer grant: RS256 assertion
//                              against --fcm-pub, iss, aud, scope, exp
//   POST /v1/projects/<id>/messages:send   FCM v1: a bearer token it issued
// Test controls (HTTP/1.1 is accepted too, for the tests' plain client):
//   GET /_requests   every request so far, as JSON
//   POST /_reset     forgets the recorded requests and scripted answers
//   POST /_script    {"answers":[{kind, token?, status, reason?, errorCode?,
//                    field?, retry_after?, delay_ms?}]}: the next matching
//                    requests get these answers, in order, each used once.
//                    FCM: field adds a google.rpc.BadRequest detail with a
//                    field violation on it, as FCM's 400 INVALID_ARGUMENT
//                    does: "message.token" for a malformed token, a message
//                    field ("message.data[0].value") for a malformed payload
import crypto from 'node:crypto';
import fs from 'node:fs';
import http2 from 'node:http2';

const opt = {};
for (let i = 2; i < process.argv.length; i += 2)
	opt[process.argv[i].replace(/^--/, '')] = process.argv[i + 1];
const apnsPub = crypto.createPublicKey(fs.readFileSync(opt['apns-pub']));
const fcmPub = crypto.createPublicKey(fs.readFileSync(opt['fcm-pub']));
const tokenLifetime = Number(opt['fcm-token-lifetime'] || 3599);
const origin = `https://127.0.0.1:${opt.port}`;

let requests = [];
let script = [];
const issued = new Map();	// access token -> expiry (ms)

function b64json(part) {
	return JSON.parse(Buffer.from(part, 'base64url').toString());
}

// Checks a compact JWT: returns {header, claims} or throws a reason.
function checkJwt(token, alg, key) {
	const parts = (token || '').split('.');
	if (parts.length !== 3)
		throw 'MalformedJwt';
	const header = b64json(parts[0]), claims = b64json(parts[1]);
	if (header.alg !== alg)
		throw 'WrongAlgorithm';
	const data = Buffer.from(parts[0] + '.' + parts[1]);
	const sig = Buffer.from(parts[2], 'base64url');
	const ok = alg === 'ES256' ?
		crypto.verify('sha256', data, { key, dsaEncoding: 'ieee-p1363' }, sig) :
		crypto.verify('RSA-SHA256', data, key, sig);
	if (!ok)
		throw 'BadSignature';
	return { header, claims };
}

function takeAnswer(kind, token) {
	const i = script.findIndex(a => a.kind === kind && (!a.token || a.token === token));
	return i < 0 ? null : script.splice(i, 1)[0];
}

function send(res, status, body, headers = {}) {
	const text = body === undefined ? '' : JSON.stringify(body);
	res.writeHead(status, { 'content-type': 'application/json', ...headers });
	res.end(text);
}

function apns(req, res, rec, body) {
	const now = Math.floor(Date.now() / 1000);
	const token = decodeURIComponent(req.url.slice('/3/device/'.length));
	const auth = req.headers['authorization'] || '';
	rec.kind = 'apns';
	rec.token = token;
	rec.auth = auth.replace(/^bearer /, '');
	try {
		if (!/^bearer /.test(auth))
			throw 'MissingProviderToken';
		const jwt = checkJwt(rec.auth, 'ES256', apnsPub);
		rec.jwt = jwt;
		if (jwt.header.kid !== opt['key-id'] || jwt.claims.iss !== opt['team-id'])
			throw 'InvalidProviderToken';
		if (!(jwt.claims.iat <= now + 60))
			throw 'InvalidProviderToken';
		if (now - jwt.claims.iat > 3600)
			return { status: 403, body: { reason: 'ExpiredProviderToken' } };
	} catch (why) {
		return { status: 403, body: { reason: String(why) === 'MissingProviderToken' ?
			'MissingProviderToken' : 'InvalidProviderToken' } };
	}
	if (req.headers['apns-topic'] !== opt.topic)
		return { status: 400, body: { reason: 'TopicDisallowed' } };
	if (!req.headers['apns-push-type'])
		return { status: 400, body: { reason: 'InvalidPushType' } };
	if (!['10', '5', '1'].includes(req.headers['apns-priority'] || '10'))
		return { status: 400, body: { reason: 'BadPriority' } };
	if ((req.headers['apns-collapse-id'] || '').length > 64)
		return { status: 400, body: { reason: 'BadCollapseId' } };
	if (body.length > 4096)
		return { status: 413, body: { reason: 'PayloadTooLarge' } };
	try {
		rec.body = JSON.parse(body);
	} catch {
		return { status: 400, body: { reason: 'PayloadEmpty' } };
	}
	if (!rec.body.aps)
		return { status: 400, body: { reason: 'PayloadEmpty' } };
	if (!/^[0-9A-Fa-f]+$/.test(token))
		return { status: 400, body: { reason: 'BadDeviceToken' } };
	const a = takeAnswer('apns', token);
	if (a) {
		const headers = a.retry_after !== undefined ? { 'retry-after': String(a.retry_after) } : {};
		const reason = a.reason || { 400: 'BadDeviceToken', 410: 'Unregistered',
			429: 'TooManyRequests', 503: 'ServiceUnavailable', 500: 'InternalServerError' }[a.status];
		return { status: a.status, body: a.status === 200 ? undefined : { reason }, headers,
			delay: a.delay_ms };
	}
	return { status: 200, headers: { 'apns-id': crypto.randomUUID() } };
}

function oauth(req, res, rec, body) {
	rec.kind = 'token';
	const form = new URLSearchParams(body);
	try {
		if (form.get('grant_type') !== 'urn:ietf:params:oauth:grant-type:jwt-bearer')
			throw 'unsupported_grant_type';
		const jwt = checkJwt(form.get('assertion'), 'RS256', fcmPub);
		rec.jwt = jwt;
		const c = jwt.claims, now = Math.floor(Date.now() / 1000);
		if (c.iss !== opt['client-email'] || c.aud !== origin + '/token' ||
		    !String(c.scope).split(' ').includes('https://www.googleapis.com/auth/firebase.messaging') ||
		    !(c.exp > now) || c.exp - c.iat > 3600)
			throw 'invalid_grant';
	} catch (why) {
		return { status: 400, body: { error: String(why) } };
	}
	const token = 'fake-' + crypto.randomBytes(12).toString('hex');
	issued.set(token, Date.now() + tokenLifetime * 1000);
	rec.issued = token;
	return { status: 200, body: { access_token: token, expires_in: tokenLifetime, token_type: 'Bearer' } };
}

// FCM's error shape (firebase.google.com/docs/cloud-messaging/error-codes):
// an FcmError detail with errorCode, and for a bad request field a
// google.rpc.BadRequest detail naming it.
function fcmError(status, code, errorCode, field) {
	const e = { code: status, message: errorCode || code, status: code, details: [] };
	if (errorCode)
		e.details.push({ '@type': 'type.googleapis.com/google.firebase.fcm.v1.FcmError', errorCode });
	if (field) {
		e.message = field === 'message.token' ?
			'The registration token is not a valid FCM registration token' :
			`Invalid value at '${field}'`;
		e.details.push({ '@type': 'type.googleapis.com/google.rpc.BadRequest',
			fieldViolations: [{ field, description: e.message }] });
	}
	if (!e.details.length)
		delete e.details;
	return { error: e };
}

function fcm(req, res, rec, body) {
	rec.kind = 'fcm';
	const auth = (req.headers['authorization'] || '').replace(/^Bearer /, '');
	rec.auth = auth;
	if (!issued.has(auth) || issued.get(auth) < Date.now())
		return { status: 401, body: fcmError(401, 'UNAUTHENTICATED') };
	if (req.url !== `/v1/projects/${opt['project-id']}/messages:send`)
		return { status: 404, body: fcmError(404, 'NOT_FOUND') };
	try {
		rec.body = JSON.parse(body);
	} catch {
		return { status: 400, body: fcmError(400, 'INVALID_ARGUMENT', null, 'message') };
	}
	const token = rec.body?.message?.token;
	rec.token = token;
	if (!token)
		return { status: 400, body: fcmError(400, 'INVALID_ARGUMENT', 'INVALID_ARGUMENT', 'message') };
	if (!/^[A-Za-z0-9_:-]+$/.test(token))
		return { status: 400, body: fcmError(400, 'INVALID_ARGUMENT', 'INVALID_ARGUMENT', 'message.token') };
	const a = takeAnswer('fcm', token);
	if (a && a.status !== 200) {
		const codes = { 404: ['NOT_FOUND', 'UNREGISTERED'], 400: ['INVALID_ARGUMENT', 'INVALID_ARGUMENT'],
			429: ['RESOURCE_EXHAUSTED', 'QUOTA_EXCEEDED'], 503: ['UNAVAILABLE', 'UNAVAILABLE'],
			500: ['INTERNAL', 'INTERNAL'] }[a.status] || ['UNKNOWN', 'UNSPECIFIED_ERROR'];
		const headers = a.retry_after !== undefined ? { 'retry-after': String(a.retry_after) } : {};
		return { status: a.status, body: fcmError(a.status, codes[0], a.errorCode || codes[1], a.field),
			headers, delay: a.delay_ms };
	}
	return { status: 200, body: { name: `projects/${opt['project-id']}/messages/${Date.now()}` },
		delay: a?.delay_ms };
}

function control(req, res, body) {
	if (req.method === 'GET' && req.url === '/_requests')
		return send(res, 200, requests);
	if (req.method === 'POST' && req.url === '/_reset') {
		requests = [];
		script = [];
		return send(res, 200, {});
	}
	if (req.method === 'POST' && req.url === '/_script') {
		script.push(...JSON.parse(body).answers);
		return send(res, 200, { queued: script.length });
	}
	send(res, 404, { reason: 'NotFound' });
}

const server = http2.createSecureServer({
	key: fs.readFileSync(opt.key), cert: fs.readFileSync(opt.cert), allowHTTP1: true,
	settings: { maxConcurrentStreams: 1000 },
});
server.on('request', (req, res) => {
	const chunks = [];
	req.on('data', c => chunks.push(c));
	req.on('end', () => {
		const body = Buffer.concat(chunks).toString();
		if (req.url.startsWith('/_'))
			return control(req, res, body);
		const rec = { time: Date.now(), method: req.method, path: req.url,
			http: req.httpVersion, headers: req.headers };
		let out;
		if (req.method !== 'POST')
			out = { status: 405, body: { reason: 'MethodNotAllowed' } };
		else if (req.url.startsWith('/3/device/'))
			out = apns(req, res, rec, body);
		else if (req.url === '/token')
			out = oauth(req, res, rec, body);
		else if (req.url.startsWith('/v1/projects/'))
			out = fcm(req, res, rec, body);
		else
			out = { status: 404, body: { reason: 'BadPath' } };
		rec.status = out.status;
		requests.push(rec);
		const reply = () => {
			rec.answered = !res.destroyed && !res.closed;
			send(res, out.status, out.body, out.headers);
		};
		if (out.delay)
			setTimeout(reply, out.delay);
		else
			reply();
	});
});
server.on('sessionError', e => console.log(`push-server: session error: ${e.message}`));
server.on('session', session => {
	const opened = Date.now();
	session.on('goaway', code => console.log(`push-server: goaway from client code=${code}`));
	session.on('error', e => console.log(`push-server: session error: ${e.message}`));
	session.on('frameError', (type, code, id) => console.log(`push-server: frame error type=${type} code=${code} stream=${id}`));
	session.on('close', () => console.log(`push-server: session closed after ${Date.now() - opened} ms`));
});
server.listen(Number(opt.port), '127.0.0.1', () =>
	console.log(`push-server: listening on ${origin}`));
for (const sig of ['SIGTERM', 'SIGINT'])
	process.on(sig, () => process.exit(0));
