// message-events.js: what happens to a message after it is sent
// (PROTOCOL.md, "Additions": edits, deletions and reactions), applied to the
// client's copy of the message object.
//
// The client's copy may already show a change before its event arrives:
// an edit or deletion from this device is applied from the REST answer, and
// a reaction of this user's is shown as soon as it is clicked. So applying
// an event is idempotent where it can be told: an edit sets the body, a
// deletion marks the message deleted, and a reaction of this user's
// changes the count only when the "me" flag says it is not counted yet.
// Reactions of others are counted as they come (each is one event).

// Applies an inbox event of kind edit, delete or reaction to message m (in
// place). me is this user's id. Returns true when m changed.
export function applyEvent(m, ev, me) {
  if (!m || m.message_id !== ev.message_id || m.conversation_id !== ev.conversation_id) return false;
  switch (ev.type) {
    case 'edit':
      if (m.deleted_at) return false;
      m.body = ev.body;
      m.edited_at = ev.edited_at;
      return true;
    case 'delete':
      if (m.deleted_at) return false;
      m.deleted_at = ev.deleted_at || new Date().toISOString();
      m.body = '';
      m.attachments = [];
      m.reactions = [];
      return true;
    case 'reaction':
      return applyReaction(m, ev.emoji, ev.op === 'add', ev.user_id === me);
    default:
      return false;
  }
}

// Adds (add) or takes back one reaction emoji on m, mine when it is this
// user's. Returns true when m changed.
export function applyReaction(m, emoji, add, mine) {
  if (m.deleted_at) return false;
  const list = m.reactions || (m.reactions = []);
  let r = list.find((x) => x.emoji === emoji);
  if (add) {
    if (mine && r && r.me) return false;
    if (!r) list.push(r = { emoji, count: 0, me: false });
    r.count++;
    if (mine) r.me = true;
  } else {
    if (!r || (mine && !r.me)) return false;
    r.count--;
    if (mine) r.me = false;
    if (r.count <= 0) list.splice(list.indexOf(r), 1);
  }
  return true;
}

// Whether this user has given emoji on m.
export const reactedWith = (m, emoji) => !!(m.reactions || []).find((r) => r.emoji === emoji && r.me);
