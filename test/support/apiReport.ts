/**
 * The public surface as text: one listing per subpath of package.json's
 * `exports` map, each exported name with its kind and the type the checker
 * gives it, one line each, sorted. Namespace re-exports (`export * as Topic
 * from …`) are listed member by member (`Topic.make`, `Topic.layer`, …);
 * classes and interfaces list their public members one level down, those
 * declared in this package (`Class.member` for a static one,
 * `Class#member` for an instance one), not those inherited from Effect or
 * the platform.
 *
 * The listings are checked in under docs/api/ and compared by
 * test/Api.test.ts, so a change to the surface is a visible diff.
 *
 *     npx tsx test/support/apiReport.ts          # the names counted per subpath
 *     npx tsx test/support/apiReport.ts --write  # rewrite docs/api/ (npm run api:report)
 */
import { mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs"
import * as Path from "node:path"
import { fileURLToPath } from "node:url"
import ts from "typescript"

/** The folder of the reports, relative to the package root. */
export const reportDir = "docs/api"

const packageName = "effect-stream-rpc"

export interface Entry {
  /** The key in the exports map: `.`, `./Topic`, `./client/effect`, … */
  readonly subpath: string
  /** The source file tsconfig.json's `paths` maps the subpath to, relative to the package root. */
  readonly source: string
  /** The `types` file the exports map gives, relative to the package root. */
  readonly types: string
  /** The report's file name in `reportDir`. */
  readonly file: string
}

export interface Report extends Entry {
  /** Exported names: namespaces and their members included, class and interface members not. */
  readonly names: number
  readonly text: string
}

/** `index` for `.`, else the subpath with `/` as `-`: `client-effect`. */
export const reportFile = (subpath: string): string =>
  `${subpath === "." ? "index" : subpath.replace(/^\.\//, "").replaceAll("/", "-")}.api.md`

const specifierOf = (subpath: string): string => subpath === "." ? packageName : `${packageName}${subpath.slice(1)}`

const readTsconfig = (root: string): ts.ParsedCommandLine => {
  const path = Path.join(root, "tsconfig.json")
  const read = ts.readConfigFile(path, ts.sys.readFile)
  if (read.error) throw new Error(ts.flattenDiagnosticMessageText(read.error.messageText, "\n"))
  return ts.parseJsonConfigFileContent(read.config, ts.sys, root, undefined, path)
}

const entriesOf = (root: string, options: ts.CompilerOptions): ReadonlyArray<Entry> => {
  const pkg = JSON.parse(readFileSync(Path.join(root, "package.json"), "utf8")) as {
    readonly exports: Record<string, string | { readonly types?: string }>
  }
  const paths = options.paths ?? {}
  return Object.entries(pkg.exports).flatMap(([subpath, target]) => {
    if (typeof target === "string" || target.types === undefined) return [] // ./package.json
    const mapped = paths[specifierOf(subpath)]
    if (mapped === undefined || mapped.length !== 1) {
      throw new Error(`tsconfig.json maps no single source file for ${specifierOf(subpath)}`)
    }
    return [{
      subpath,
      source: Path.normalize(mapped[0]!),
      types: Path.normalize(target.types),
      file: reportFile(subpath)
    }]
  })
}

/** The subpaths of the exports map that have types, with their source files. */
export const entries = (root: string = process.cwd()): ReadonlyArray<Entry> => entriesOf(root, readTsconfig(root).options)

// ---------------------------------------------------------------------------
// listing
// ---------------------------------------------------------------------------

const typeFlags = ts.TypeFormatFlags.NoTruncation |
  ts.TypeFormatFlags.UseAliasDefinedOutsideCurrentScope |
  ts.TypeFormatFlags.AllowUniqueESSymbolType

/** Source or checker text on one line: a line break after an opening bracket or before a closing one goes. */
const oneLine = (text: string): string =>
  text
    .replace(/([(<[])\s*\n\s*/g, "$1")
    .replace(/,?\s*\n\s*([)>\]])/g, "$1")
    .replace(/,?\s*\n\s*}/g, " }")
    .replace(/\s*\n\s*/g, " ")
    .trim()

interface Line {
  /** The exported name the line is about, or whose member it lists. */
  readonly owner: string
  /** `.name` (static) or `#name` (instance) for a member, else empty. */
  readonly member: string
  readonly text: string
}

/** Case-insensitive, then by code unit, so `Subscription` and `subscription` keep a fixed order on any machine. */
const compareNames = (a: string, b: string): number => {
  const x = a.toLowerCase()
  const y = b.toLowerCase()
  return x < y ? -1 : x > y ? 1 : a < b ? -1 : a > b ? 1 : 0
}

/** By exported name; a name's own lines before its members; members by name. */
const compareLines = (a: Line, b: Line): number =>
  compareNames(a.owner, b.owner) ||
  compareNames(a.member, b.member) ||
  (a.text < b.text ? -1 : a.text > b.text ? 1 : 0)

const isPackageFile = (root: string, file: ts.SourceFile): boolean => {
  const relative = Path.relative(root, file.fileName)
  return !relative.startsWith("..") && !relative.split(Path.sep).includes("node_modules")
}

const list = (program: ts.Program, root: string, entry: Entry): { readonly lines: ReadonlyArray<string>; readonly names: number } => {
  const checker = program.getTypeChecker()
  const sourceFile = program.getSourceFile(Path.resolve(root, entry.source))
  if (sourceFile === undefined) throw new Error(`${entry.source} is not in the program`)
  const moduleSymbol = checker.getSymbolAtLocation(sourceFile)
  if (moduleSymbol === undefined) throw new Error(`${entry.source} is not a module`)

  const lines: Array<Line> = []
  let names = 0
  const typeText = (type: ts.Type, at: ts.Node | undefined, flags: ts.TypeFormatFlags = 0): string =>
    oneLine(checker.typeToString(type, at, typeFlags | flags))
  const typeParameters = (declaration: ts.Declaration | undefined): string => {
    const parameters = declaration !== undefined && "typeParameters" in declaration
      ? (declaration.typeParameters as ts.NodeArray<ts.TypeParameterDeclaration> | undefined)
      : undefined
    return parameters === undefined || parameters.length === 0
      ? ""
      : `<${parameters.map((p) => oneLine(p.getText())).join(", ")}>`
  }
  const heritage = (declaration: ts.Declaration | undefined): string => {
    if (declaration === undefined || !(ts.isClassDeclaration(declaration) || ts.isInterfaceDeclaration(declaration))) return ""
    return (declaration.heritageClauses ?? [])
      .map((clause) =>
        ` ${clause.token === ts.SyntaxKind.ExtendsKeyword ? "extends" : "implements"} ${
          clause.types.map((t) => oneLine(t.getText())).join(", ")
        }`
      )
      .join("")
  }

  /** Public members declared in this package, one line each. */
  const members = (owner: string, separator: "." | "#", type: ts.Type, kind: "static" | "member") => {
    for (const member of checker.getPropertiesOfType(type)) {
      if (member.escapedName === "prototype") continue
      const declarations = member.declarations ?? []
      const declaration = declarations[0]
      if (declaration === undefined || !declarations.some((d) => isPackageFile(root, d.getSourceFile()))) continue
      const modifiers = ts.getCombinedModifierFlags(declaration)
      if (modifiers & (ts.ModifierFlags.Private | ts.ModifierFlags.Protected)) continue
      const declaredName = ts.getNameOfDeclaration(declaration)
      if (declaredName !== undefined && ts.isPrivateIdentifier(declaredName)) continue
      const name = declaredName !== undefined && ts.isComputedPropertyName(declaredName)
        ? oneLine(declaredName.getText())
        : member.name
      const readonly = modifiers & ts.ModifierFlags.Readonly ? "readonly " : ""
      const optional = member.flags & ts.SymbolFlags.Optional ? "?" : ""
      const memberType = checker.getTypeOfSymbolAtLocation(member, declaration)
      lines.push({
        owner,
        member: `${separator}${name}`,
        text: `${kind} ${readonly}${owner}${separator}${name}${optional}: ${typeText(memberType, declaration)}`
      })
    }
  }

  const visit = (prefix: string, exported: ts.Symbol): void => {
    const name = `${prefix}${exported.name}`
    const symbol = exported.flags & ts.SymbolFlags.Alias ? checker.getAliasedSymbol(exported) : exported
    const declarations = symbol.declarations ?? []
    const find = <D extends ts.Declaration>(is: (node: ts.Node) => node is D): D | undefined =>
      declarations.find(is) as D | undefined
    names++
    const before = lines.length
    const flags = symbol.flags
    if (flags & ts.SymbolFlags.Function) {
      const declaration = find(ts.isFunctionDeclaration)
      lines.push({ owner: name, member: "", text: `function ${name}: ${typeText(checker.getTypeOfSymbol(symbol), declaration)}` })
    }
    if (flags & ts.SymbolFlags.Variable) {
      const declaration = find(ts.isVariableDeclaration)
      const keyword = declaration === undefined
        ? "var"
        : ts.getCombinedNodeFlags(declaration) & ts.NodeFlags.Const
        ? "const"
        : ts.getCombinedNodeFlags(declaration) & ts.NodeFlags.Let
        ? "let"
        : "var"
      lines.push({ owner: name, member: "", text: `${keyword} ${name}: ${typeText(checker.getTypeOfSymbol(symbol), declaration)}` })
    }
    if (flags & ts.SymbolFlags.Class) {
      const declaration = find(ts.isClassDeclaration)
      const abstract = declaration !== undefined && ts.getCombinedModifierFlags(declaration) & ts.ModifierFlags.Abstract
        ? "abstract "
        : ""
      lines.push({ owner: name, member: "", text: `${abstract}class ${name}${typeParameters(declaration)}${heritage(declaration)}` })
      members(name, ".", checker.getTypeOfSymbol(symbol), "static")
      members(name, "#", checker.getDeclaredTypeOfSymbol(symbol), "member")
    }
    if (flags & ts.SymbolFlags.Interface) {
      const declaration = find(ts.isInterfaceDeclaration)
      lines.push({ owner: name, member: "", text: `interface ${name}${typeParameters(declaration)}${heritage(declaration)}` })
      members(name, "#", checker.getDeclaredTypeOfSymbol(symbol), "member")
    }
    if (flags & ts.SymbolFlags.TypeAlias) {
      const declaration = find(ts.isTypeAliasDeclaration)
      const type = checker.getDeclaredTypeOfSymbol(symbol)
      lines.push({
        owner: name,
        member: "",
        text: `type ${name}${typeParameters(declaration)} = ${typeText(type, declaration, ts.TypeFormatFlags.InTypeAlias)}`
      })
    }
    if (flags & ts.SymbolFlags.Enum) {
      const declaration = find(ts.isEnumDeclaration)
      const values = declaration?.members.map((member) => oneLine(member.getText())).join(", ") ?? ""
      lines.push({ owner: name, member: "", text: `enum ${name} { ${values} }` })
    }
    if (flags & (ts.SymbolFlags.ValueModule | ts.SymbolFlags.NamespaceModule)) {
      lines.push({ owner: name, member: "", text: `namespace ${name}` })
      for (const member of checker.getExportsOfModule(symbol)) visit(`${name}.`, member)
    }
    if (lines.length === before) throw new Error(`${entry.subpath}: ${name} is of a kind the report does not list`)
  }

  for (const exported of checker.getExportsOfModule(moduleSymbol)) visit("", exported)
  return { lines: lines.sort(compareLines).map((line) => line.text), names }
}

const render = (entry: Entry, names: number, lines: ReadonlyArray<string>): string =>
  [
    `# ${specifierOf(entry.subpath)}`,
    "",
    "Generated by `npm run api:report`; checked by test/Api.test.ts. Do not edit by hand.",
    "",
    `Source: \`${entry.source.split(Path.sep).join("/")}\`. Exported names: ${names}.`,
    "",
    "```text",
    ...lines,
    "```",
    ""
  ].join("\n")

/** Every subpath's report, from one program over all the entries. */
export const apiReports = (root: string = process.cwd()): ReadonlyArray<Report> => {
  const config = readTsconfig(root)
  const all = entriesOf(root, config.options)
  const options = { ...config.options, noEmit: true }
  const host = ts.createCompilerHost(options)
  // Doc comments play no part in a TypeScript file's types. Most of the time
  // goes to parsing declaration files (Effect's are mostly doc comments), and
  // leaving the comments unparsed saves a good part of it.
  host.jsDocParsingMode = ts.JSDocParsingMode.ParseNone
  const program = ts.createProgram({ rootNames: all.map((entry) => Path.resolve(root, entry.source)), options, host })
  return all.map((entry) => {
    const { lines, names } = list(program, root, entry)
    return { ...entry, names, text: render(entry, names, lines) }
  })
}

/** Writes every report to `reportDir` and removes the reports of subpaths that are gone. */
export const writeReports = (root: string = process.cwd()): ReadonlyArray<Report> => {
  const reports = apiReports(root)
  const dir = Path.join(root, reportDir)
  mkdirSync(dir, { recursive: true })
  const keep = new Set(reports.map((report) => report.file))
  for (const file of readdirSync(dir)) {
    if (file.endsWith(".api.md") && !keep.has(file)) rmSync(Path.join(dir, file))
  }
  for (const report of reports) writeFileSync(Path.join(dir, report.file), report.text)
  return reports
}

if (process.argv[1] !== undefined && Path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const write = process.argv.includes("--write")
  const reports = write ? writeReports() : apiReports()
  for (const report of reports) {
    console.log(`${String(report.names).padStart(4)}  ${specifierOf(report.subpath)}${write ? `  → ${reportDir}/${report.file}` : ""}`)
  }
  console.log(`${String(reports.reduce((n, r) => n + r.names, 0)).padStart(4)}  in all`)
}
