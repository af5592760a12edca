// attachments.js: the files of messages, fetched with the session's token.
//
// GET /api/v1/attachments/{id} (and /thumbnail) take the bearer token in
// the Authorization header, so a plain <img src> or <a href> cannot fetch
// them: each is fetched into a Blob and shown through a blob: URL
// (URL.createObjectURL). Thumbnails are small and shown again at every
// redraw of the list, so their URL is kept per attachment id for the page's
// life; the full files (the lightbox, downloads) are kept as Blobs per id,
// and each use makes its own URL, revoked when the element showing it goes
// away. forget() lets go of an attachment (its message was deleted: access
// to it ended), forgetAll() of every one (logout).

const thumbs = new Map(); // id -> {url, promise, failed}
const files = new Map();  // id -> Promise<Blob>

// Sizes as people read them: "812 B", "14 kB", "3.2 MB" (powers of 1024,
// as the server's limit of 25 MiB is written "25 MB").
export function formatSize(n) {
  n = Number(n) || 0;
  if (n < 1024) return `${n} B`;
  if (n < 1048576) return `${Math.round(n / 1024)} kB`;
  return `${(n / 1048576).toFixed(n < 10 * 1048576 ? 1 : 0)} MB`;
}

// An attachment shown as a picture: an image the server made a thumbnail of.
export const isPicture = (f) => !!f && /^image\//.test(f.content_type || '') && !!f.thumbnail;

// The thumbnail's blob: URL, fetching it the first time. Returns
// {url, promise, failed}: url is null until it is fetched; promise resolves
// to the URL (or null when it failed: it is asked for again next time).
export function thumbnailUrl(api, id) {
  let t = thumbs.get(id);
  if (t && !t.failed) return t;
  t = { url: null, failed: false, promise: null };
  thumbs.set(id, t);
  t.promise = api.thumbnail(id).then((blob) => {
    if (thumbs.get(id) !== t) return null; // forgotten meanwhile
    t.url = URL.createObjectURL(blob);
    return t.url;
  }).catch(() => {
    t.failed = true;
    return null;
  });
  return t;
}

// The whole file as a Blob (kept for the page's life); a failed fetch is
// not kept, so the next click asks again.
export function fileBlob(api, id) {
  let p = files.get(id);
  if (!p) {
    p = api.attachment(id);
    files.set(id, p);
    p.catch(() => { if (files.get(id) === p) files.delete(id); });
  }
  return p;
}

export function forget(id) {
  const t = thumbs.get(id);
  if (t && t.url) URL.revokeObjectURL(t.url);
  thumbs.delete(id);
  files.delete(id);
}

export function forgetAll() {
  for (const id of [...thumbs.keys()]) forget(id);
  files.clear();
}

// Saves a Blob as a file named name, the way a download link does: an
// <a download> clicked, its URL revoked once the browser has taken it.
export function saveBlob(blob, name) {
  const url = URL.createObjectURL(blob);
  const a = document.createElement('a');
  a.href = url;
  a.download = name || 'file';
  a.hidden = true;
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 60000);
}
