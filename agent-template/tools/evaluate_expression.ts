import jsep from 'jsep';
import { defineTool, ToolInputError } from '@nexus-delta/runtime';

const FUNCTIONS: Record<string, (...xs: number[]) => number> = {
  abs: Math.abs, sqrt: Math.sqrt, cbrt: Math.cbrt, exp: Math.exp, ln: Math.log, log: Math.log10, log2: Math.log2,
  sin: Math.sin, cos: Math.cos, tan: Math.tan, asin: Math.asin, acos: Math.acos, atan: Math.atan,
  floor: Math.floor, ceil: Math.ceil, round: Math.round, min: Math.min, max: Math.max, pow: Math.pow,
};
const CONSTANTS: Record<string, number> = { pi: Math.PI, e: Math.E };
const BINARY: Record<string, (a: number, b: number) => number> = {
  '+': (a, b) => a + b, '-': (a, b) => a - b, '*': (a, b) => a * b, '/': (a, b) => a / b,
  '%': (a, b) => a % b, '^': (a, b) => a ** b,
};

jsep.addBinaryOp('^', 11, true);

/**
 * Evaluate a parsed arithmetic expression. Only numbers, + - * / % ^, unary -/+, parentheses,
 * the functions and constants above and caller-given variables are allowed: no eval, no property
 * access, no calls to anything else.
 */
function evaluate(node: jsep.Expression, vars: Record<string, number>): number {
  switch (node.type) {
    case 'Literal': {
      const v = (node as jsep.Literal).value;
      if (typeof v !== 'number') throw new ToolInputError(`only numbers are allowed, got ${JSON.stringify(v)}`);
      return v;
    }
    case 'Identifier': {
      const name = (node as jsep.Identifier).name;
      if (Object.hasOwn(vars, name)) return vars[name]!;
      if (Object.hasOwn(CONSTANTS, name)) return CONSTANTS[name]!;
      throw new ToolInputError(`unknown variable '${name}'`);
    }
    case 'UnaryExpression': {
      const u = node as jsep.UnaryExpression;
      const x = evaluate(u.argument, vars);
      if (u.operator === '-') return -x;
      if (u.operator === '+') return x;
      throw new ToolInputError(`operator '${u.operator}' is not allowed`);
    }
    case 'BinaryExpression': {
      const b = node as jsep.BinaryExpression;
      const op = Object.hasOwn(BINARY, b.operator) ? BINARY[b.operator] : undefined;
      if (!op) throw new ToolInputError(`operator '${b.operator}' is not allowed`);
      return op(evaluate(b.left, vars), evaluate(b.right, vars));
    }
    case 'CallExpression': {
      const c = node as jsep.CallExpression;
      if (c.callee.type !== 'Identifier') throw new ToolInputError('member access is not allowed; call a function by its name');
      const callee = (c.callee as jsep.Identifier).name;
      const fn = Object.hasOwn(FUNCTIONS, callee) ? FUNCTIONS[callee] : undefined;
      if (!fn) throw new ToolInputError(`unknown function '${callee}'; known: ${Object.keys(FUNCTIONS).join(', ')}`);
      return fn(...c.arguments.map((a) => evaluate(a, vars)));
    }
    default:
      throw new ToolInputError(`'${node.type}' is not allowed in an expression`);
  }
}

/** A safe calculator: arithmetic expressions with functions, constants and variables. */
export const evaluateExpression = defineTool<{ expression: string; variables?: Record<string, number> }>({
  name: 'evaluate_expression',
  description: 'Evaluate an arithmetic expression, e.g. "2 * (3 + 4) ^ 2" or "sqrt(x) + pi" with variables.',
  parameters: {
    type: 'object',
    required: ['expression'],
    properties: {
      expression: { type: 'string', minLength: 1, maxLength: 1000 },
      variables: { type: 'object', additionalProperties: { type: 'number' }, maxProperties: 100 },
    },
    additionalProperties: false,
  },
  handler: ({ expression, variables = {} }) => {
    let ast: jsep.Expression;
    try {
      ast = jsep(expression);
    } catch (err) {
      throw new ToolInputError(`cannot parse expression: ${(err as Error).message}`);
    }
    const value = evaluate(ast, variables);
    if (!Number.isFinite(value)) throw new ToolInputError(`expression has no finite value (${value})`);
    return { expression, value };
  },
});
