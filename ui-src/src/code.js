// The script editor: CodeMirror 6 with JavaScript highlighting and a linter that
// parses with acorn and reports syntax errors inline (underline, gutter, tooltip).

import { EditorState } from '@codemirror/state';
import {
  EditorView, keymap, lineNumbers, highlightActiveLine, highlightActiveLineGutter, drawSelection, dropCursor,
  highlightSpecialChars, rectangularSelection, crosshairCursor,
} from '@codemirror/view';
import { defaultKeymap, history, historyKeymap, indentWithTab } from '@codemirror/commands';
import { javascript } from '@codemirror/lang-javascript';
import { syntaxHighlighting, indentOnInput, bracketMatching, foldGutter, foldKeymap } from '@codemirror/language';
import { classHighlighter } from '@lezer/highlight';
import { linter, lintGutter, lintKeymap } from '@codemirror/lint';
import { autocompletion, closeBrackets, closeBracketsKeymap, completionKeymap } from '@codemirror/autocomplete';
import { highlightSelectionMatches, searchKeymap } from '@codemirror/search';
import { parse } from 'acorn';

function parseError(source, sourceType) {
  try {
    parse(source, {
      ecmaVersion: 'latest',
      sourceType,
      allowAwaitOutsideFunction: true,
      allowReturnOutsideFunction: true,
      allowHashBang: true,
    });
    return null;
  } catch (err) {
    if (typeof err.pos !== 'number') return null;
    const message = String(err.message).replace(/\s*\(\d+:\d+\)$/, '');
    return { pos: err.pos, line: err.loc ? err.loc.line : 0, column: err.loc ? err.loc.column + 1 : 0, message };
  }
}

/**
 * Parse a job's script or a library; null when it is valid, else {pos, line, column, message}.
 * Scripts and libraries may use ES module `import` (libraries also `export`): the server
 * rewrites those, so a script that parses only as a module is valid too.
 */
export function syntaxError(source) {
  const error = parseError(source, 'script');
  if (!error || !/'import' and 'export' may appear only/.test(error.message)) return error;
  return parseError(source, 'module');
}

function jsLinter(onResult) {
  return linter((view) => {
    const source = view.state.doc.toString();
    const error = syntaxError(source);
    onResult(error);
    if (!error) return [];
    const pos = Math.min(error.pos, source.length);
    const line = view.state.doc.lineAt(pos);
    // Underline one character: the one at the error, or the last one when the error is at the end of a line.
    let from = pos;
    let to = pos;
    if (pos < line.to) to = pos + 1;
    else if (pos > line.from) from = pos - 1;
    return [{
      from, to, severity: 'error', source: 'syntax',
      message: `${error.message} (line ${error.line}, column ${error.column})`,
    }];
  }, { delay: 250 });
}

const theme = EditorView.theme({
  '&': { color: 'var(--fg)', backgroundColor: 'var(--code-bg)', height: '100%', fontSize: '13.5px' },
  '.cm-scroller': { fontFamily: 'var(--mono)', lineHeight: '1.5' },
  '.cm-content': { caretColor: 'var(--fg)' },
  '.cm-cursor, .cm-dropCursor': { borderLeftColor: 'var(--fg)', borderLeftWidth: '2px' },
  '&.cm-focused': { outline: 'none' },
  '&.cm-focused > .cm-scroller > .cm-selectionLayer .cm-selectionBackground, .cm-selectionBackground, .cm-content ::selection': {
    backgroundColor: 'var(--code-selection)',
  },
  '.cm-gutters': { backgroundColor: 'var(--code-gutter)', color: 'var(--muted)', borderRight: '1px solid var(--border)' },
  '.cm-activeLine': { backgroundColor: 'var(--code-active)' },
  '.cm-activeLineGutter': { backgroundColor: 'var(--code-active)', color: 'var(--fg)' },
  '.cm-matchingBracket, &.cm-focused .cm-matchingBracket': { backgroundColor: 'var(--code-match)', outline: 'none' },
  '.cm-selectionMatch': { backgroundColor: 'var(--code-match)' },
  '.cm-tooltip': { backgroundColor: 'var(--surface)', color: 'var(--fg)', border: '1px solid var(--border)' },
  '.cm-tooltip-autocomplete > ul > li[aria-selected]': { backgroundColor: 'var(--accent)', color: 'var(--accent-fg)' },
  '.cm-panels': { backgroundColor: 'var(--surface-2)', color: 'var(--fg)' },
  '.cm-panels input, .cm-panels button': { color: 'inherit' },
  '.cm-diagnostic-error': { borderLeftColor: 'var(--bad)' },
  '.cm-foldPlaceholder': { backgroundColor: 'var(--surface-2)', border: '1px solid var(--border)', color: 'var(--muted)' },
});

/**
 * Mount an editor in `parent`.
 * options: doc, onChange(text), onRun() (Ctrl/Cmd+Enter), onSave() (Ctrl/Cmd+S), onSyntax(error|null), label
 */
export function createCodeEditor(parent, { doc = '', onChange, onRun, onSave, onSyntax, label = 'Script' } = {}) {
  const shortcuts = keymap.of([
    { key: 'Mod-Enter', run: () => { onRun?.(); return true; }, preventDefault: true },
    { key: 'Mod-s', run: () => { onSave?.(); return true; }, preventDefault: true },
  ]);
  const state = EditorState.create({
    doc,
    extensions: [
      shortcuts,
      lineNumbers(),
      highlightActiveLineGutter(),
      highlightSpecialChars(),
      history(),
      foldGutter(),
      drawSelection(),
      dropCursor(),
      EditorState.allowMultipleSelections.of(true),
      indentOnInput(),
      syntaxHighlighting(classHighlighter),
      bracketMatching(),
      closeBrackets(),
      autocompletion(),
      rectangularSelection(),
      crosshairCursor(),
      highlightActiveLine(),
      highlightSelectionMatches(),
      keymap.of([
        ...closeBracketsKeymap, ...defaultKeymap, ...searchKeymap, ...historyKeymap, ...foldKeymap,
        ...completionKeymap, ...lintKeymap, indentWithTab,
      ]),
      javascript(),
      lintGutter(),
      jsLinter((error) => onSyntax?.(error)),
      theme,
      EditorView.contentAttributes.of({ 'aria-label': label }),
      EditorView.updateListener.of((update) => {
        if (update.docChanged) onChange?.(update.state.doc.toString());
      }),
    ],
  });
  const view = new EditorView({ state, parent });
  return {
    view,
    getValue: () => view.state.doc.toString(),
    setValue: (text) => view.dispatch({ changes: { from: 0, to: view.state.doc.length, insert: text } }),
    focus: () => view.focus(),
    destroy: () => view.destroy(),
  };
}
