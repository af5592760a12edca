// menu.js: a small popup menu of actions, opened from a button (a
// message's "⋯", a person's "⋯").
//
// One menu is open at a time. It is a role="menu" of buttons, placed by its
// button (below it, or above when there is no room), and takes the focus:
// the arrow keys, Home and End move between its items, Escape closes it and
// gives the focus back, and so does choosing an item; a click elsewhere,
// Tab, a scroll or a resize close it too. Chats redraw their lists whole, so the button may be
// replaced while the menu is open: opts.anchorAgain finds it again.

let open = null; // {el, anchor, anchorAgain, cleanup}

// Opens a menu by anchor (the button). items: [{text, label?, onSelect,
// danger?, checked?}] or {row: [items]} for items side by side (an emoji
// row); an item with `checked` is a menuitemcheckbox. opts.label names the
// menu; opts.anchorAgain() returns the button after a redraw.
export function openMenu(anchor, items, opts = {}) {
  closeMenu(false);
  const el = document.createElement('div');
  el.className = 'menu';
  el.setAttribute('role', 'menu');
  if (opts.label) el.setAttribute('aria-label', opts.label);
  const button = (it) => {
    const b = document.createElement('button');
    b.type = 'button';
    b.textContent = it.text;
    b.tabIndex = -1;
    if (it.checked === undefined) b.setAttribute('role', 'menuitem');
    else {
      b.setAttribute('role', 'menuitemcheckbox');
      b.setAttribute('aria-checked', String(!!it.checked));
    }
    if (it.label) b.setAttribute('aria-label', it.label);
    if (it.title) b.title = it.title;
    if (it.danger) b.classList.add('danger-text');
    b.addEventListener('click', () => {
      closeMenu(true);
      it.onSelect();
    });
    return b;
  };
  for (const it of items) {
    if (it.row) {
      const row = document.createElement('div');
      row.className = 'menu-row';
      row.setAttribute('role', 'group');
      if (it.label) row.setAttribute('aria-label', it.label);
      row.append(...it.row.map(button));
      el.append(row);
    } else {
      el.append(button(it));
    }
  }
  (anchor.closest('dialog') || document.body).append(el);
  place(el, anchor);
  anchor.setAttribute('aria-expanded', 'true');

  const buttons = () => [...el.querySelectorAll('button')];
  el.addEventListener('keydown', (e) => {
    const all = buttons();
    const i = all.indexOf(document.activeElement);
    let next = null;
    if (e.key === 'ArrowDown' || e.key === 'ArrowRight') next = all[(i + 1) % all.length];
    else if (e.key === 'ArrowUp' || e.key === 'ArrowLeft') next = all[(i - 1 + all.length) % all.length];
    else if (e.key === 'Home') next = all[0];
    else if (e.key === 'End') next = all[all.length - 1];
    else if (e.key === 'Escape') { e.preventDefault(); e.stopPropagation(); closeMenu(true); return; }
    else if (e.key === 'Tab') { closeMenu(false); return; }
    if (next) { e.preventDefault(); next.focus(); }
  });
  const outside = (e) => {
    if (!el.contains(e.target) && !anchor.contains(e.target)) closeMenu(false);
  };
  // A menu left where its button was is wrong once the page moves.
  const resize = () => closeMenu(false);
  document.addEventListener('pointerdown', outside, true);
  document.addEventListener('scroll', resize, true);
  window.addEventListener('resize', resize);
  open = {
    el, anchor, anchorAgain: opts.anchorAgain,
    cleanup: () => {
      document.removeEventListener('pointerdown', outside, true);
      document.removeEventListener('scroll', resize, true);
      window.removeEventListener('resize', resize);
    },
  };
  const first = buttons()[0];
  if (first) first.focus();
}

// Closes the open menu, if any; refocus: give the focus back to its button.
export function closeMenu(refocus) {
  if (!open) return;
  const { el, anchor, anchorAgain, cleanup } = open;
  open = null;
  cleanup();
  el.remove();
  const target = anchor.isConnected ? anchor : anchorAgain ? anchorAgain() : null;
  if (anchor.isConnected) anchor.setAttribute('aria-expanded', 'false');
  if (refocus && target) target.focus({ preventScroll: true });
}

// True when the menu open is the one of this anchor (a toggle closes it).
export const menuOpenFor = (anchor) => !!open && open.anchor === anchor;

// Below the button, its right edges lined up, inside the window; above the
// button when there is no room below.
function place(el, anchor) {
  const r = anchor.getBoundingClientRect();
  const m = el.getBoundingClientRect();
  const gap = 4;
  let top = r.bottom + gap;
  if (top + m.height > window.innerHeight - 8 && r.top - gap - m.height > 8) top = r.top - gap - m.height;
  let left = r.right - m.width;
  left = Math.max(8, Math.min(left, window.innerWidth - m.width - 8));
  el.style.top = `${Math.max(8, top)}px`;
  el.style.left = `${left}px`;
}
