// Navigation state shared by the router (main.js) and the pages.

export const nav = {
  /** The hash the router last rendered (pages update it when they rewrite their query). */
  hash: null,
  /** The mounted page: {unmount(), dirty()} */
  page: null,
  /** Re-render the current hash (installed by main.js). */
  route: () => {},
};

/** Keep a page's filters in the hash without re-routing (replaceState fires no hashchange). */
export function updateHashQuery(path, params) {
  const qs = params.toString();
  nav.hash = `#${path}${qs ? `?${qs}` : ''}`;
  history.replaceState(null, '', nav.hash);
}

/** Go somewhere without the unsaved-changes question (after a save or a delete). */
export function navigate(hash, { replace = false } = {}) {
  if (nav.page) nav.page.dirty = null;
  if (replace) {
    history.replaceState(null, '', hash);
    nav.route();
  } else {
    location.hash = hash;
  }
}
