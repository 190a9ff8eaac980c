// Shared widgets: toasts, modal dialogs (Enter confirms, Escape cancels), switches.

import { h } from './dom.js';
import { token } from './api.js';

let toastRegion = null;

/** A short message in the corner; errors stay longer. */
export function toast(message, kind = 'info', link = null) {
  if (!toastRegion) {
    toastRegion = h('div', { class: 'toasts', role: 'status', 'aria-live': 'polite' });
    document.body.append(toastRegion);
  }
  const item = h('div', { class: `toast toast-${kind}` },
    h('span', null, message),
    link ? h('a', { href: link.href }, link.text) : null,
    h('button', { type: 'button', class: 'icon-button', 'aria-label': 'Dismiss', onclick: () => item.remove() }, '×'));
  toastRegion.append(item);
  setTimeout(() => item.remove(), kind === 'error' ? 8000 : 4000);
}

export function errorText(err) {
  return err && err.message ? err.message : String(err);
}

let dialogIds = 0;

function modal(build) {
  return new Promise((resolve) => {
    const id = `dlg-${++dialogIds}`;
    const dialog = h('dialog', { class: 'dialog', 'aria-labelledby': `${id}-title` });
    const { form, result, focus } = build(id, dialog);
    dialog.append(form);
    dialog.addEventListener('close', () => {
      resolve(result(dialog.returnValue));
      dialog.remove();
    });
    document.body.append(dialog);
    dialog.showModal();
    (focus || form.querySelector('[autofocus]'))?.focus();
  });
}

/** Resolves true when the user confirms (button or Enter), false on Cancel or Escape. */
export function confirmDialog({ title, message, confirm = 'OK', danger = false }) {
  return modal((id) => {
    const ok = h('button', { type: 'submit', value: 'ok', class: danger ? 'button danger' : 'button primary' }, confirm);
    const form = h('form', { method: 'dialog' },
      h('h2', { id: `${id}-title` }, title),
      message ? h('p', null, message) : null,
      h('div', { class: 'dialog-actions' },
        h('button', { type: 'submit', value: 'cancel', class: 'button' }, 'Cancel'),
        ok));
    return { form, focus: ok, result: (value) => value === 'ok' };
  });
}

/** Ask for an API token; resolves the token, or null when cancelled. */
export function tokenDialog(reason) {
  return modal((id, dialog) => {
    const input = h('input', {
      type: 'password', id: `${id}-token`, name: 'token', autocomplete: 'off', spellcheck: 'false', required: true,
      value: token.get(),
    });
    const form = h('form', { method: 'dialog', class: 'token-form' },
      h('h2', { id: `${id}-title` }, 'API token'),
      h('p', null, reason || 'Give the bearer token this server expects (the --token it was started with, or one made with "traitor token create").'),
      h('label', { for: `${id}-token` }, 'Token'),
      input,
      h('p', { class: 'muted small' }, 'Kept in this tab only (sessionStorage).'),
      h('div', { class: 'dialog-actions' },
        token.get() ? h('button', {
          type: 'button', class: 'button', onclick: () => { token.set(''); input.value = ''; dialog.close('cleared'); },
        }, 'Forget token') : null,
        h('button', { type: 'button', class: 'button', onclick: () => dialog.close('cancel') }, 'Cancel'),
        h('button', { type: 'submit', value: 'ok', class: 'button primary' }, 'Use token')));
    form.addEventListener('submit', (event) => {
      // method=dialog submits with the button's value; Enter in the field has no submitter.
      if (!event.submitter) {
        event.preventDefault();
        if (input.value.trim()) dialog.close('ok');
      }
    });
    return { form, focus: input, result: (value) => (value === 'ok' ? input.value.trim() || null : null) };
  });
}

/** An accessible on/off switch (a checkbox with role=switch). */
export function switchEl({ checked, label, onchange, id }) {
  const input = h('input', { type: 'checkbox', role: 'switch', checked, id, 'aria-label': label, onchange });
  return h('label', { class: 'switch', title: label }, input, h('span', { class: 'switch-track', 'aria-hidden': 'true' }));
}
