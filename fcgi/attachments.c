/*
 * Attachments (doc/protocol.md "Attachments"): POST /attachments takes a
 * file as the raw body and stores it; GET /attachments/{id} and its
 * /thumbnail let the web server send it once the caller may see it.
 *
 * An upload streams from FastCGI to a temporary file under
 * [attachments] dir/tmp/, hashed (SHA-256) as it goes, so a thread holds one
 * 64 KiB buffer whatever the size. Its type is sniffed from its first bytes
 * (lib/media.h); an image gets its size and a thumbnail (lib/image.h), and
 * one that does not decode is kept as an ordinary file. The row is inserted
 * first and the files are renamed into place after, so a crash in between
 * leaves a row without a file, which "parley-admin attachments prune"
 * removes with the other uploads never posted, never a file without a row.
 *
 * Downloads never pass through parley-api: it answers with the headers and
 * a pointer to the file, which the web server follows (X-Accel-Redirect for
 * nginx, X-Sendfile for Apache's mod_xsendfile; the server says which in
 * the FastCGI parameter PARLEY_SENDFILE) and serves with ranges. The web
 * server adds X-Content-Type-Options: nosniff and a sandboxing
 * Content-Security-Policy to every file it sends (deploy/).
 */
#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "api.h"
#include "image.h"
#include "log.h"
#include "media.h"
#include "banned.h"

/* Where nginx's internal location for attachments is (deploy/nginx). */
#define ACCEL_PREFIX "/_parley/attachments/"

#define CHUNK_BYTES 65536
/* A disk that refuses (full, gone) is a store that is down: 503. */
#define STORE_FAILED "cannot store the upload now; retry"
/* The longest X-Filename taken, percent-encoded. */
#define NAME_HEADER_MAX 4096

struct upload {
	char storage[PL_MEDIA_STORAGE_BYTES];	/* "xx/<32 hex>" */
	char tmp_path[4096], tmp_thumb[4096];
	char name[PL_MEDIA_NAME_BYTES];
	char sha256[crypto_hash_sha256_BYTES * 2 + 1];
	unsigned char head[PL_MEDIA_SNIFF_BYTES];
	size_t head_len;
	long long size;
	const char *type;	/* static */
	int has_image;
	struct pl_image_info image;
};

/* Makes dir (mode 0750, below the setgid dir it inherits its group from). */
static enum pl_err make_dir(struct api_request *req, const char *dir)
{
	if (mkdir(dir, 0750) == 0 || errno == EEXIST)
		return PL_OK;
	pl_log_errno(PL_LOG_ERR, "attachments: cannot create '%s'", dir);
	return api_fail(req, PL_UNAVAILABLE, STORE_FAILED);
}

/* The cleaned X-Filename into up->name ("" without one). */
static enum pl_err read_name(struct api_request *req, struct upload *up)
{
	const char *raw = FCGX_GetParam("HTTP_X_FILENAME", req->fcgx->envp);
	size_t rawlen = raw ? strlen(raw) : 0;
	char *dec;
	int declen, bad;

	up->name[0] = '\0';
	if (rawlen == 0)
		return PL_OK;
	if (rawlen > NAME_HEADER_MAX)
		return api_fail(req, PL_TOO_LARGE, "X-Filename is over %d bytes",
				NAME_HEADER_MAX);
	dec = curl_easy_unescape(NULL, raw, (int)rawlen, &declen);
	if (!dec)
		return api_fail(req, PL_INTERNAL, "out of memory");
	bad = pl_media_clean_name(dec, (size_t)declen, up->name,
				  sizeof(up->name));
	curl_free(dec);
	if (bad)
		return api_fail(req, PL_BAD_REQUEST, "X-Filename must be UTF-8, "
				"percent-encoded");
	return PL_OK;
}

/* Writes buf[0..n) to fd in full. Returns 0, or -1 with errno. */
static int write_all(int fd, const unsigned char *buf, size_t n)
{
	while (n > 0) {
		ssize_t w = write(fd, buf, n);

		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0)
			return -1;
		buf += w;
		n -= (size_t)w;
	}
	return 0;
}

/*
 * Streams the body into fd, hashing it and keeping its first bytes for
 * sniffing. Returns PL_OK, or what api_upload_read() failed with, or fails
 * the request (500) when the disk refuses.
 */
static enum pl_err receive(struct api_request *req, struct upload *up, int fd)
{
	crypto_hash_sha256_state hash;
	unsigned char digest[crypto_hash_sha256_BYTES];
	unsigned char *buf = malloc(CHUNK_BYTES);
	enum pl_err rc = PL_OK;
	size_t got;

	if (!buf)
		return api_fail(req, PL_INTERNAL, "out of memory");
	crypto_hash_sha256_init(&hash);
	for (;;) {
		rc = api_upload_read(req, buf, CHUNK_BYTES, &got);
		if (rc || got == 0)
			break;
		if (up->head_len < sizeof(up->head)) {
			size_t take = sizeof(up->head) - up->head_len;

			take = take < got ? take : got;
			memcpy(up->head + up->head_len, buf, take);
			up->head_len += take;
		}
		crypto_hash_sha256_update(&hash, buf, got);
		up->size += (long long)got;
		if (write_all(fd, buf, got)) {
			pl_log_errno(PL_LOG_ERR, "attachments: cannot write '%s'",
				     up->tmp_path);
			rc = api_fail(req, PL_UNAVAILABLE, STORE_FAILED);
			break;
		}
	}
	free(buf);
	if (rc)
		return rc;
	crypto_hash_sha256_final(&hash, digest);
	sodium_bin2hex(up->sha256, sizeof(up->sha256), digest, sizeof(digest));
	if (fsync(fd)) {
		pl_log_errno(PL_LOG_ERR, "attachments: cannot sync '%s'",
			     up->tmp_path);
		return api_fail(req, PL_UNAVAILABLE, STORE_FAILED);
	}
	return PL_OK;
}

/*
 * The upload's type, and for an image its size and thumbnail (at most
 * [attachments] image_concurrency images at once). An image that does not
 * decode, or is too large to, becomes an ordinary file: a type "image/..."
 * always comes with a width, a height and a thumbnail.
 */
static void classify(struct api_request *req, struct upload *up)
{
	const char *image = pl_media_sniff(up->head, up->head_len);
	sem_t *slots = &req->w->shared->image_slots;
	enum pl_image_result rc;
	char why[256];

	if (!image) {
		up->type = pl_media_file_type(FCGX_GetParam("CONTENT_TYPE",
							    req->fcgx->envp));
		return;
	}
	while (sem_wait(slots) != 0 && errno == EINTR)
		;
	rc = pl_image_thumbnail(up->tmp_path, image, up->tmp_thumb, &up->image,
				why, sizeof(why));
	sem_post(slots);
	up->has_image = rc == PL_IMAGE_OK;
	up->type = up->has_image ? image : PL_MEDIA_OCTET_STREAM;
	if (!up->has_image)
		pl_log(PL_LOG_DEBUG, "attachments: %s of %lld bytes kept as a "
		       "file: %s request_id=%s", image, up->size, why,
		       req->request_id);
}

/* Moves the upload's files into place and syncs their directory. */
static int place(const struct pl_config *cfg, const struct upload *up)
{
	char path[4096], thumb[sizeof(path) + 8], dir[4096];
	int fd;

	snprintf(path, sizeof(path), "%s/%s", cfg->attachments_dir, up->storage);
	snprintf(thumb, sizeof(thumb), "%s.thumb", path);
	snprintf(dir, sizeof(dir), "%s/%.2s", cfg->attachments_dir, up->storage);
	/* libvips made the thumbnail with the umask's mode: as private as
	 * the upload, for the web server's group only. */
	if (up->has_image && (chmod(up->tmp_thumb, 0640) != 0 ||
			      rename(up->tmp_thumb, thumb) != 0)) {
		pl_log_errno(PL_LOG_ERR, "attachments: cannot rename to '%s'",
			     thumb);
		return -1;
	}
	if (rename(up->tmp_path, path) != 0) {
		pl_log_errno(PL_LOG_ERR, "attachments: cannot rename to '%s'",
			     path);
		unlink(thumb);
		return -1;
	}
	/* The renames are durable once their directory is. */
	fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd >= 0) {
		fsync(fd);
		close(fd);
	}
	return 0;
}

#define INSERT_SQL \
	"INSERT INTO attachments AS a (uploader_id, content_type, size, name, " \
	"sha256, width, height, thumb_width, thumb_height, storage) " \
	"VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) " \
	"RETURNING a.id, (attachment_json(a) || " \
	"jsonb_build_object('sha256', a.sha256))::text"

/* Records the upload, then moves its files into place; replies 201. */
static enum pl_err store(struct api_request *req, struct upload *up)
{
	char uid[24], size[24], w[24], h[24], tw[24], th[24], id[24];
	int img = up->has_image;
	const char *params[] = {
		api_ll(uid, req->user_id), up->type, api_ll(size, up->size),
		up->name, up->sha256,
		img ? api_ll(w, up->image.width) : NULL,
		img ? api_ll(h, up->image.height) : NULL,
		img ? api_ll(tw, up->image.thumb_width) : NULL,
		img ? api_ll(th, up->image.thumb_height) : NULL,
		up->storage,
	};
	PGresult *res;
	char *json;
	enum pl_err rc;

	rc = api_sql(req, INSERT_SQL, 10, params, 0, &res);
	if (rc)
		return rc;
	snprintf(id, sizeof(id), "%s", PQgetvalue(res, 0, 0));
	json = strdup(PQgetvalue(res, 0, 1));
	PQclear(res);
	if (!json || place(req->w->cfg, up) != 0) {
		free(json);
		rc = api_sql(req, "DELETE FROM attachments WHERE id = $1", 1,
			     (const char *const[]){ id }, 0, &res);
		if (rc == PL_OK)
			PQclear(res);
		return api_fail(req, PL_UNAVAILABLE, STORE_FAILED);
	}
	pl_log(PL_LOG_DEBUG, "attachments: stored %s as %s (%s, %lld bytes) "
	       "user_id=%lld", id, up->storage, up->type, up->size,
	       req->user_id);
	api_reply_text(req, 201, json);
	return PL_OK;
}

/* POST /attachments: the raw bytes, Content-Type and X-Filename headers. */
enum pl_err api_attachments_upload(struct api_request *req)
{
	const char *dir = req->w->cfg->attachments_dir;
	struct upload *up = calloc(1, sizeof(*up));
	char sub[4096];
	enum pl_err rc;
	int fd = -1;

	if (!up)
		return api_fail(req, PL_INTERNAL, "out of memory");
	rc = read_name(req, up);
	if (rc)
		goto out;
	pl_media_storage_name(up->storage);
	snprintf(up->tmp_path, sizeof(up->tmp_path), "%s/tmp/%s.part", dir,
		 up->storage + 3);
	snprintf(up->tmp_thumb, sizeof(up->tmp_thumb), "%s/tmp/%s.thumb.part",
		 dir, up->storage + 3);
	snprintf(sub, sizeof(sub), "%s/tmp", dir);
	rc = make_dir(req, sub);
	if (rc == PL_OK) {
		snprintf(sub, sizeof(sub), "%s/%.2s", dir, up->storage);
		rc = make_dir(req, sub);
	}
	if (rc)
		goto out;
	fd = open(up->tmp_path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC |
		  O_NOFOLLOW, 0640);
	if (fd < 0) {
		pl_log_errno(PL_LOG_ERR, "attachments: cannot create '%s'",
			     up->tmp_path);
		rc = api_fail(req, PL_UNAVAILABLE, STORE_FAILED);
		goto out;
	}
	rc = receive(req, up, fd);
	close(fd);
	if (rc)
		goto out;
	if (up->size == 0) {
		rc = api_fail(req, PL_BAD_REQUEST, "the upload is empty: send "
			      "the file's bytes as the body");
		goto out;
	}
	classify(req, up);
	rc = store(req, up);
out:
	/* Gone after a rename already; else the leftovers of a failure. */
	if (fd >= 0) {
		unlink(up->tmp_path);
		unlink(up->tmp_thumb);
	}
	free(up);
	return rc;
}

/* Downloads ------------------------------------------------------------- */

/*
 * Who may see an attachment: its uploader, and the members of the
 * conversation whose message posted it, while that message is not deleted.
 */
#define VISIBLE_SQL \
	"SELECT a.content_type, a.name, a.sha256, a.storage, " \
	"a.thumb_width IS NOT NULL FROM attachments a WHERE a.id = $1 AND " \
	"(a.uploader_id = $2 OR EXISTS (SELECT 1 FROM messages m JOIN members " \
	"mb ON mb.conversation_id = m.conversation_id AND mb.user_id = $2 " \
	"WHERE m.conversation_id = a.conversation_id AND " \
	"m.message_id = a.message_id AND m.deleted_at IS NULL))"

/*
 * Whether If-None-Match (header, borrowed, may be NULL) names etag (quoted):
 * "*", or a list of entity tags, weak or not (RFC 9110 13.1.2 compares
 * them weakly).
 */
static int etag_matches(const char *header, const char *etag)
{
	size_t n = strlen(etag);

	if (!header)
		return 0;
	for (const char *p = header; *p;) {
		p += strspn(p, " \t,");
		if (*p == '*')
			return 1;
		if (strncmp(p, "W/", 2) == 0)
			p += 2;
		if (strncmp(p, etag, n) == 0 &&
		    (p[n] == '\0' || p[n] == ',' || p[n] == ' ' || p[n] == '\t'))
			return 1;
		p += strcspn(p, ",");
	}
	return 0;
}

/*
 * Content-Disposition for a file named name (cleaned UTF-8, may be ""):
 * inline for images, attachment otherwise, with the name twice (RFC 6266):
 * as ASCII for old clients, and as UTF-8 in filename*.
 */
static enum pl_err disposition(struct api_request *req, int inline_ok,
			       const char *name)
{
	const char *kind = inline_ok ? "inline" : "attachment";
	char ascii[PL_ATTACHMENT_NAME_MAX_CHARS + 1];
	size_t n = 0;
	char *utf8;
	enum pl_err rc;

	if (!name[0])
		return api_reply_header(req, "Content-Disposition: %s", kind);
	for (const unsigned char *p = (const unsigned char *)name;
	     *p && n < sizeof(ascii) - 1; p++) {
		if ((*p & 0xc0) == 0x80)
			continue;	/* the rest of a character made '_' */
		ascii[n++] = *p >= 0x80 || *p == '"' || *p == '\\' ||
			*p < 0x20 ? '_' : (char)*p;
	}
	ascii[n] = '\0';
	utf8 = curl_easy_escape(NULL, name, 0);
	if (!utf8)
		return api_fail(req, PL_INTERNAL, "out of memory");
	rc = api_reply_header(req, "Content-Disposition: %s; filename=\"%s\"; "
			      "filename*=UTF-8''%s", kind, ascii, utf8);
	curl_free(utf8);
	return rc;
}

/*
 * The headers that make the web server send file (a storage name, or one
 * with ".thumb") from [attachments] dir: X-Accel-Redirect to nginx's
 * internal location, or X-Sendfile's absolute path to mod_xsendfile.
 */
static enum pl_err sendfile_header(struct api_request *req, const char *file)
{
	const char *how = FCGX_GetParam("PARLEY_SENDFILE", req->fcgx->envp);

	if (how && strcmp(how, "x-accel-redirect") == 0)
		return api_reply_header(req, "X-Accel-Redirect: " ACCEL_PREFIX
					"%s", file);
	if (how && strcmp(how, "x-sendfile") == 0)
		return api_reply_header(req, "X-Sendfile: %s/%s",
					req->w->cfg->attachments_dir, file);
	return api_fail(req, PL_INTERNAL, "the web server does not serve "
			"attachments: it must pass PARLEY_SENDFILE "
			"(doc/deploying.md \"Attachments\")");
}

/* GET /attachments/{id} and its thumbnail: the file, sent by the server. */
static enum pl_err serve(struct api_request *req, int thumbnail)
{
	char aid[24], uid[24], etag[80], file[PL_MEDIA_STORAGE_BYTES + 8];
	const char *type, *name, *sha256;
	int has_thumb;
	PGresult *res;
	enum pl_err rc;

	rc = api_sql(req, VISIBLE_SQL, 2, (const char *const[]){
			     api_ll(aid, req->params[0]),
			     api_ll(uid, req->user_id) }, 1, &res);
	if (rc)
		return rc;
	if (PQntuples(res) != 1) {
		PQclear(res);
		return api_fail(req, PL_NOT_FOUND, "attachment %lld does not "
				"exist or is not yours to see", req->params[0]);
	}
	type = PQgetvalue(res, 0, 0);
	name = PQgetvalue(res, 0, 1);
	sha256 = PQgetvalue(res, 0, 2);
	has_thumb = PQgetvalue(res, 0, 4)[0] == 't';
	snprintf(file, sizeof(file), "%s%s", PQgetvalue(res, 0, 3),
		 thumbnail ? ".thumb" : "");
	/* A thumbnail is a file of its own: its own tag. */
	snprintf(etag, sizeof(etag), "\"%s%s\"", sha256,
		 thumbnail ? "-thumb" : "");
	if (thumbnail && !has_thumb) {
		PQclear(res);
		return api_fail(req, PL_NOT_FOUND, "attachment %lld has no "
				"thumbnail", req->params[0]);
	}
	/* Access may end (a member leaves): caches ask again every time. */
	rc = api_reply_header(req, "ETag: %s", etag);
	if (!rc)
		rc = api_reply_header(req, "Cache-Control: private, no-cache");
	if (!rc && etag_matches(FCGX_GetParam("HTTP_IF_NONE_MATCH",
					      req->fcgx->envp), etag)) {
		PQclear(res);
		api_reply(req, 304, NULL);
		return PL_OK;
	}
	if (!rc)
		rc = api_reply_header(req, "Content-Type: %s",
				      thumbnail ? PL_IMAGE_THUMB_TYPE : type);
	if (!rc)
		rc = disposition(req, thumbnail || pl_media_is_image(type),
				 thumbnail ? "" : name);
	if (!rc)
		rc = sendfile_header(req, file);
	PQclear(res);
	if (rc)
		return rc;
	api_reply(req, 200, NULL);
	return PL_OK;
}

enum pl_err api_attachments_get(struct api_request *req)
{
	return serve(req, 0);
}

enum pl_err api_attachments_thumbnail(struct api_request *req)
{
	return serve(req, 1);
}
