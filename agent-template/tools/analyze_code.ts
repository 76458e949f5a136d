import { defineTool } from '@nexus-delta/runtime';
import type * as TS from 'typescript';

/** Largest source analysed, in characters. */
const MAX_CODE_CHARS = 200_000;

type Language = 'typescript' | 'tsx' | 'javascript' | 'jsx';

interface Diagnostic {
  line: number;
  column: number;
  message: string;
  code: number;
}

interface CodeSymbol {
  name: string;
  kind: string;
  line: number;
  exported: boolean;
}

let tsModule: typeof TS | undefined;
/** The TypeScript compiler, imported on the first call (it is 9 MB of JavaScript). */
async function loadTypeScript(): Promise<typeof TS> {
  tsModule ??= ((await import('typescript')) as unknown as { default: typeof TS }).default;
  return tsModule;
}

function symbolsOf(ts: typeof TS, sf: TS.SourceFile): CodeSymbol[] {
  const out: CodeSymbol[] = [];
  const lineOf = (n: TS.Node) => sf.getLineAndCharacterOfPosition(n.getStart(sf)).line + 1;
  const exported = (n: TS.Node) => ts.canHaveModifiers(n) && (ts.getModifiers(n) ?? []).some((m) => m.kind === ts.SyntaxKind.ExportKeyword);
  const add = (name: string | undefined, kind: string, n: TS.Node) => out.push({ name: name ?? 'default', kind, line: lineOf(n), exported: exported(n) });
  for (const st of sf.statements) {
    if (ts.isFunctionDeclaration(st)) add(st.name?.text, 'function', st);
    else if (ts.isClassDeclaration(st)) add(st.name?.text, 'class', st);
    else if (ts.isInterfaceDeclaration(st)) add(st.name.text, 'interface', st);
    else if (ts.isTypeAliasDeclaration(st)) add(st.name.text, 'type', st);
    else if (ts.isEnumDeclaration(st)) add(st.name.text, 'enum', st);
    else if (ts.isModuleDeclaration(st)) add(st.name.getText(sf), 'namespace', st);
    else if (ts.isVariableStatement(st)) {
      const kind = st.declarationList.flags & ts.NodeFlags.Const ? 'const' : st.declarationList.flags & ts.NodeFlags.Let ? 'let' : 'var';
      for (const d of st.declarationList.declarations) out.push({ name: d.name.getText(sf), kind, line: lineOf(d), exported: exported(st) });
    }
  }
  return out;
}

/** Lines that hold code, only comments, or nothing, by scanning tokens (comments inside strings are not comments). */
function lineCounts(ts: typeof TS, code: string, sf: TS.SourceFile, variant: TS.LanguageVariant): { total: number; code: number; comment: number; blank: number } {
  const lines = code.split(/\r?\n/);
  const codeLines = new Set<number>();
  const commentLines = new Set<number>();
  const scanner = ts.createScanner(ts.ScriptTarget.Latest, false, variant, code);
  const mark = (set: Set<number>, start: number, end: number) => {
    const a = sf.getLineAndCharacterOfPosition(start).line;
    const b = sf.getLineAndCharacterOfPosition(Math.max(start, end - 1)).line;
    for (let l = a; l <= b; l++) set.add(l);
  };
  for (let kind = scanner.scan(); kind !== ts.SyntaxKind.EndOfFileToken; kind = scanner.scan()) {
    if (kind === ts.SyntaxKind.SingleLineCommentTrivia || kind === ts.SyntaxKind.MultiLineCommentTrivia) mark(commentLines, scanner.getTokenStart(), scanner.getTokenEnd());
    else if (kind !== ts.SyntaxKind.WhitespaceTrivia && kind !== ts.SyntaxKind.NewLineTrivia) mark(codeLines, scanner.getTokenStart(), scanner.getTokenEnd());
  }
  const blank = lines.filter((l) => l.trim() === '').length;
  const commentOnly = [...commentLines].filter((l) => !codeLines.has(l)).length;
  return { total: lines.length, code: codeLines.size, comment: commentOnly, blank };
}

/** Syntax diagnostics, top-level symbols and line counts of TypeScript or JavaScript source (TypeScript compiler API). */
export const analyzeCode = defineTool<{ code: string; language?: Language }>({
  name: 'analyze_code',
  description: 'Syntax errors (line, column, message), top-level symbols and line counts of TypeScript or JavaScript source.',
  parameters: {
    type: 'object',
    required: ['code'],
    properties: {
      code: { type: 'string', maxLength: MAX_CODE_CHARS },
      language: { type: 'string', enum: ['typescript', 'tsx', 'javascript', 'jsx'], default: 'typescript' },
    },
    additionalProperties: false,
  },
  handler: async ({ code, language = 'typescript' }) => {
    const ts = await loadTypeScript();
    const kinds = { typescript: ts.ScriptKind.TS, tsx: ts.ScriptKind.TSX, javascript: ts.ScriptKind.JS, jsx: ts.ScriptKind.JSX };
    const ext = { typescript: 'ts', tsx: 'tsx', javascript: 'js', jsx: 'jsx' }[language];
    const fileName = `input.${ext}`;
    const sf = ts.createSourceFile(fileName, code, ts.ScriptTarget.Latest, true, kinds[language]);
    // syntactic diagnostics only: no type checking, no other files, no lib
    const { diagnostics = [] } = ts.transpileModule(code, { fileName, reportDiagnostics: true, compilerOptions: { noLib: true, noResolve: true, isolatedModules: true } });
    const syntax: Diagnostic[] = diagnostics
      .filter((d) => d.category === ts.DiagnosticCategory.Error)
      .map((d) => {
        const pos = sf.getLineAndCharacterOfPosition(d.start ?? 0);
        return { line: pos.line + 1, column: pos.character + 1, message: ts.flattenDiagnosticMessageText(d.messageText, ' '), code: d.code };
      });
    const variant = language === 'tsx' || language === 'jsx' ? ts.LanguageVariant.JSX : ts.LanguageVariant.Standard;
    return {
      language,
      valid: syntax.length === 0,
      diagnostics: syntax,
      symbols: symbolsOf(ts, sf),
      lines: lineCounts(ts, code, sf, variant),
      typescript_version: ts.version,
    };
  },
});
