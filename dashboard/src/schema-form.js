// A tool's JSON Schema (its `parameters`) as form fields, and the form's values back as the
// tool's parameters. Kinds: number/integer, string, string enum, boolean, arrays of numbers or
// strings (comma-separated or a JSON array), anything else (objects, nested arrays) as JSON.

/** One field per property of an object schema: [{name, kind, required, label, description, options?}]. */
export function fieldsOf(schema) {
  const props = schema && typeof schema === 'object' && schema.properties ? schema.properties : {};
  const required = new Set(Array.isArray(schema?.required) ? schema.required : []);
  return Object.entries(props).map(([name, p]) => ({ name, required: required.has(name), description: p.description ?? '', ...kindOf(p) }));
}

function kindOf(p) {
  const type = Array.isArray(p.type) ? p.type.find((t) => t !== 'null') : p.type;
  if (Array.isArray(p.enum) && p.enum.every((v) => typeof v === 'string')) return { kind: 'enum', options: p.enum, default: p.default };
  if (type === 'number' || type === 'integer') return { kind: type, default: p.default, min: p.minimum, max: p.maximum };
  if (type === 'boolean') return { kind: 'boolean', default: p.default };
  if (type === 'string') return { kind: p.maxLength !== undefined && p.maxLength <= 200 ? 'string' : 'text', default: p.default };
  if (type === 'array') {
    const it = p.items?.type;
    if (it === 'number' || it === 'integer') return { kind: 'numbers', integer: it === 'integer' };
    if (it === 'string') return { kind: 'strings' };
  }
  return { kind: 'json' };
}

/** Thrown for a value that cannot become the field's type; `field` names the field. */
export class FieldError extends Error {
  constructor(field, message) {
    super(message);
    this.field = field;
  }
}

function listOf(field, raw) {
  const s = raw.trim();
  if (s.startsWith('[')) {
    try {
      const v = JSON.parse(s);
      if (Array.isArray(v)) return v;
    } catch {
      // falls through to the error below
    }
    throw new FieldError(field, 'not a valid JSON array');
  }
  return s === '' ? [] : s.split(',').map((x) => x.trim());
}

/**
 * The tool's parameters from the form's raw values ({name: string | boolean}); empty optional
 * fields are left out.
 * @throws FieldError naming the first field whose value does not fit its schema.
 */
export function valuesToParameters(fields, raw) {
  const out = {};
  for (const f of fields) {
    const v = raw[f.name];
    if (f.kind === 'boolean') {
      out[f.name] = Boolean(v);
      continue;
    }
    const s = typeof v === 'string' ? v : '';
    if (s.trim() === '') {
      if (f.required) throw new FieldError(f.name, 'is required');
      continue;
    }
    if (f.kind === 'number' || f.kind === 'integer') {
      const n = Number(s);
      if (!Number.isFinite(n) || (f.kind === 'integer' && !Number.isInteger(n))) throw new FieldError(f.name, `must be ${f.kind === 'integer' ? 'a whole number' : 'a number'}`);
      out[f.name] = n;
    } else if (f.kind === 'numbers') {
      out[f.name] = listOf(f.name, s).map((x) => {
        const n = typeof x === 'number' ? x : Number(x);
        if (typeof x === 'boolean' || x === '' || !Number.isFinite(n)) throw new FieldError(f.name, `holds ${JSON.stringify(x)}, which is not a number`);
        return n;
      });
    } else if (f.kind === 'strings') {
      out[f.name] = listOf(f.name, s).map(String);
    } else if (f.kind === 'json') {
      try {
        out[f.name] = JSON.parse(s);
      } catch {
        throw new FieldError(f.name, 'is not valid JSON');
      }
    } else {
      out[f.name] = s;
    }
  }
  return out;
}
