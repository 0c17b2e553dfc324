// `chat-template` in JavaScript: the lmhost adapter for local models, clembench's semantics.
//
// Contract `lmhost:adapter@0.2.0`, with the same prompts, tool calls and
// reasoning as the Rust adapter (the formats below are the Rust `chat-formats`
// library's: `hermes`, `llama3`, `mistral`, and reasoning between tags).
//
// Request: the chat template is the one shipped in the model file, unless the
// registry entry sets `premade_chat_template: false` and a `custom_chat_template`
// (or the model file has none). The host renders it; the adapter picks it and
// passes what transformers passes (messages with their tool calls and results,
// `tools`, `add_generation_prompt`, the special tokens, `chat_template_kwargs`).
// A template that does not read `tools` gets lmhost's fallback (the tools in the
// system message, calls in the assistant's text, results as `<tool_response>`
// user turns). A required or named `tool_choice` is a constraint the engine
// enforces; `auto` a lazy one.
//
// Response, in clembench's order: the reasoning and the tool calls are taken
// out; strip whitespace; if `output_split_prefix` is set and present, keep what
// follows its last occurrence; if only `cot_end_tag` is set and present, keep
// what follows its last occurrence (trimmed again); then remove every match of
// the `eos_to_cull` regex (ECMAScript dialect, flags `gu`).
//
// Bindings (componentize-js): WIT kebab-case becomes camelCase (`shape-request` ->
// `shapeRequest`, record field `spec-json` -> `specJson`); `option<T>` is
// `T | undefined`; a variant is `{ tag: 'kebab-name', val }`; an exported
// `result<T, E>` returns T or throws E; an imported one returns T or throws an Error
// whose `payload` is E.

import { renderTemplate, log } from 'lmhost:adapter/host@0.2.0';

class AdapterError {
  constructor(tag, val) {
    this.tag = tag;
    this.val = val;
  }
}
const invalid = (message) => new AdapterError('invalid-input', message);

function parseSpec(model) {
  let spec;
  try {
    spec = JSON.parse(model.specJson);
  } catch (_) {
    spec = undefined;
  }
  if (spec === null || typeof spec !== 'object' || Array.isArray(spec)) {
    throw invalid(`registry entry of \`${model.name}\` is not a JSON object`);
  }
  return spec;
}

function stringKey(model, spec, key) {
  const value = Object.prototype.hasOwnProperty.call(spec, key) ? spec[key] : null;
  if (value === null || typeof value === 'string') return value;
  throw invalid(`\`${key}\` of \`${model.name}\` must be a string, found ${JSON.stringify(value)}`);
}

function chooseTemplate(model, spec) {
  const custom = stringKey(model, spec, 'custom_chat_template');
  let premade = Object.prototype.hasOwnProperty.call(spec, 'premade_chat_template')
    ? spec.premade_chat_template
    : null;
  if (premade === null) {
    premade = true;
  } else if (typeof premade !== 'boolean') {
    throw invalid(
      `\`premade_chat_template\` of \`${model.name}\` must be true or false, found ${JSON.stringify(premade)}`,
    );
  }
  const builtin = model.builtinTemplate; // undefined when `none`
  if (!premade && custom !== null) return custom;
  if (builtin !== undefined && builtin !== null) return builtin;
  if (custom !== null) return custom;
  throw new AdapterError(
    'unsupported',
    `\`${model.name}\` has no chat template: the model file ships none and the registry entry ` +
      'sets no `custom_chat_template`',
  );
}

function afterLast(text, sep) {
  const i = text.lastIndexOf(sep);
  return i < 0 ? null : text.slice(i + sep.length);
}

class PostProcess {
  // Without the cot end tag when the reasoning parser reads the tags.
  constructor(model, reasoningParsed = false) {
    const spec = parseSpec(model);
    this.splitPrefix = stringKey(model, spec, 'output_split_prefix') || null;
    this.cotEndTag = reasoningParsed ? null : stringKey(model, spec, 'cot_end_tag') || null;
    const pattern = stringKey(model, spec, 'eos_to_cull') || null;
    this.cull = null;
    if (pattern !== null) {
      try {
        this.cull = new RegExp(pattern, 'gu');
      } catch (e) {
        throw invalid(`\`eos_to_cull\` of \`${model.name}\` is not a valid regex \`${pattern}\`: ${e.message}`);
      }
    }
  }

  apply(raw) {
    let text = raw.trim();
    if (this.splitPrefix !== null) {
      const after = afterLast(text, this.splitPrefix);
      if (after !== null) text = after;
    }
    if (this.cotEndTag !== null) {
      const after = afterLast(text, this.cotEndTag);
      if (after !== null) text = after.trim();
    }
    if (this.cull !== null) text = text.replace(this.cull, '');
    return text;
  }
}

const completion = (text, reasoning = '', toolCalls = []) => ({
  text,
  reasoning: reasoning || undefined,
  toolCalls,
  promptTokens: undefined,
  completionTokens: undefined,
  reasoningTokens: undefined,
  finishReason: undefined,
});

// ---------------------------------------------------------------------------
// Tool-call formats (the Rust `chat-formats` library's, for a whole output).

const FORMAT_NAMES = {
  hermes: ['hermes', 'qwen', 'qwen2.5', 'qwen3'],
  llama3: ['llama3', 'llama3_json', 'llama3.1', 'llama3.2', 'llama3.3'],
  mistral: ['mistral'],
};
const MARKERS = { hermes: '<tool_call>', mistral: '[TOOL_CALLS]', llama3: null };
const MAX_NAME_BYTES = 256;

const isObject = (v) => v !== null && typeof v === 'object' && !Array.isArray(v);

// JSON as serde_json writes a value in the Rust library: compact, keys sorted.
function sorted(value) {
  if (Array.isArray(value)) return value.map(sorted);
  if (isObject(value)) {
    const out = {};
    for (const key of Object.keys(value).sort()) out[key] = sorted(value[key]);
    return out;
  }
  return value;
}
const compact = (value) => JSON.stringify(sorted(value));

function formatFromName(name) {
  const wanted = name.trim().toLowerCase();
  return Object.keys(FORMAT_NAMES).find((f) => FORMAT_NAMES[f].includes(wanted)) ?? null;
}

function detectFormat(template) {
  if (template.includes('[TOOL_CALLS]')) return 'mistral';
  if (template.includes('<tool_call>')) return 'hermes';
  if (template.includes('<|python_tag|>') || template.includes('Environment: ipython')) return 'llama3';
  return null;
}

function parseObject(text) {
  try {
    const v = JSON.parse(text);
    return isObject(v) ? v : null;
  } catch (_) {
    return null;
  }
}

function isJson(text) {
  try {
    JSON.parse(text);
    return true;
  } catch (_) {
    return false;
  }
}

function toolSpecs(tools, named) {
  return tools
    .filter((t) => named === null || t.name === named)
    .map((t) => {
      if (t.parameters === undefined) return [t.name, { type: 'object' }];
      try {
        return [t.name, JSON.parse(t.parameters)];
      } catch (e) {
        throw invalid(`the parameters of tool \`${t.name}\` are not JSON: ${e.message}`);
      }
    });
}

function constraintOf(format, specs) {
  const argsKey = format === 'llama3' ? 'parameters' : 'arguments';
  const objects = specs.map(([name, parameters]) => ({
    type: 'object',
    properties: { name: { const: name }, [argsKey]: parameters },
    required: ['name', argsKey],
    additionalProperties: false,
  }));
  const one = objects.length === 1 ? objects[0] : { anyOf: objects };
  if (format === 'hermes') return ['<tool_call>\n', compact(one), '\n</tool_call>'];
  if (format === 'llama3') return ['', compact(one), ''];
  return ['[TOOL_CALLS]', compact({ type: 'array', items: one, minItems: 1 }), ''];
}

// `calls` ([name, arguments text] pairs) as the model would write them.
function renderCalls(format, calls) {
  const obj = ([name, args], key) =>
    `{"name": ${JSON.stringify(name)}, "${key}": ${isJson(args) ? args : JSON.stringify(args)}}`;
  if (format === 'hermes') return calls.map((c) => `<tool_call>\n${obj(c, 'arguments')}\n</tool_call>`).join('\n');
  if (format === 'llama3') return calls.map((c) => obj(c, 'parameters')).join('; ');
  return `[TOOL_CALLS][${calls.map((c) => obj(c, 'arguments')).join(', ')}]`;
}

// A tool as transformers passes it: `{"type": "function", "function": {…}}`.
function toolJson(tool) {
  let parameters = { type: 'object', properties: {} };
  if (tool.parameters !== undefined) {
    parameters = parseObject(tool.parameters);
    if (parameters === null) throw invalid(`the parameters of tool \`${tool.name}\` are not a JSON object`);
  }
  const fn = { name: tool.name };
  if (tool.description !== undefined) fn.description = tool.description;
  fn.parameters = parameters;
  return { type: 'function', function: fn };
}

// Mistral's templates require ids of 9 letters and digits (FNV-1a, as in Rust).
function mistralId(id) {
  if (/^[A-Za-z0-9]{9}$/.test(id)) return id;
  const digits = '0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ';
  let h = 0xcbf29ce484222325n;
  for (const b of new TextEncoder().encode(id)) {
    h = ((h ^ BigInt(b)) * 0x100000001b3n) & 0xffffffffffffffffn;
  }
  let out = '';
  for (let i = 0; i < 9; i++) {
    out += digits[Number(h % 62n)];
    h /= 62n;
  }
  return out;
}

// A message as transformers passes it (and as the template corpus renders it):
// role, then for a tool result tool_call_id and name before content, else
// content and the calls; only the keys it has.
function messageJson(m, mistralIds) {
  const ident = mistralIds ? mistralId : (i) => i;
  const calls = m.toolCalls ?? [];
  if (m.toolCallId !== undefined) {
    const out = { role: m.role, tool_call_id: ident(m.toolCallId) };
    if (m.name !== undefined) out.name = m.name;
    out.content = m.content;
    return out;
  }
  const out = { role: m.role, content: m.content };
  if (calls.length > 0) {
    out.tool_calls = calls.map((c) => ({
      id: ident(c.id),
      type: 'function',
      function: { name: c.name, arguments: parseObject(c.arguments) ?? c.arguments },
    }));
  }
  if (m.name !== undefined) out.name = m.name;
  if (m.reasoning !== undefined) out.reasoning_content = m.reasoning;
  return out;
}

const plain = (role, content, reasoning = undefined) => ({ role, content, toolCalls: [], reasoning });

// The messages for a template without tool support: the tools described in the
// system message, calls written into the assistant's text, results as a user
// turn of `<tool_response>` blocks (consecutive ones merged).
function fallbackMessages(messages, format, tools) {
  const out = [];
  let skip = 0;
  if (tools.length > 0) {
    let described =
      '# Tools\n\nYou may call one or more functions to assist with the user query.\n\n' +
      'You are provided with function signatures within <tools></tools> XML tags:\n<tools>';
    for (const tool of tools) described += `\n${JSON.stringify(toolJson(tool))}`;
    const example = renderCalls(format, [['function_name', '{"argument": "value"}']]);
    described += `\n</tools>\n\nTo call a function, write its name and arguments in this form:\n${example}`;
    if (messages.length > 0 && messages[0].role === 'system') {
      out.push(plain('system', `${messages[0].content}\n\n${described}`));
      skip = 1;
    } else {
      out.push(plain('system', described));
    }
  }
  for (const m of messages.slice(skip)) {
    const calls = m.toolCalls ?? [];
    if (m.role === 'tool') {
      const block = `<tool_response>\n${m.content}\n</tool_response>`;
      const last = out[out.length - 1];
      if (last && last.role === 'user' && last.content.startsWith('<tool_response>')) {
        last.content += `\n${block}`;
      } else {
        out.push(plain('user', block));
      }
    } else if (m.role === 'assistant' && calls.length > 0) {
      const written = renderCalls(format, calls.map((c) => [c.name, c.arguments]));
      const text = m.content.trim();
      out.push(plain('assistant', text ? `${text}\n${written}` : written, m.reasoning));
    } else {
      out.push(m);
    }
  }
  return out;
}

// `{"name": …, <args key>: {…}, "id"?: …}` as [call, null] or [null, reason].
function namedCall(value, argsKeys) {
  if (!isObject(value)) return [null, 'a call must be a JSON object'];
  if (typeof value.name !== 'string' || value.name === '') return [null, 'a call needs a `name` string'];
  const key = argsKeys.find((k) => Object.prototype.hasOwnProperty.call(value, k));
  let args = '{}';
  if (key !== undefined) {
    const v = value[key];
    const parsed = typeof v === 'string' ? parseObject(v) : isObject(v) ? v : null;
    if (parsed === null) return [null, `the arguments of \`${value.name}\` are not a JSON object`];
    args = compact(parsed);
  }
  const id = typeof value.id === 'string' && value.id !== '' ? value.id : null;
  return [{ id, name: value.name, arguments: args }, null];
}

// The JSON object or array at `i` (after whitespace): [value, end] or [undefined, end of what was read].
function jsonAt(text, i) {
  let j = i;
  while (j < text.length && /\s/.test(text[j])) j++;
  if (text[j] !== '{' && text[j] !== '[') return [undefined, Math.min(j + 1, text.length)];
  let depth = 0;
  let inString = false;
  for (let k = j; k < text.length; k++) {
    const c = text[k];
    if (inString) {
      if (c === '\\') k++;
      else if (c === '"') inString = false;
    } else if (c === '"') {
      inString = true;
    } else if (c === '{' || c === '[') {
      depth++;
    } else if (c === '}' || c === ']') {
      depth--;
      if (depth === 0) {
        try {
          return [JSON.parse(text.slice(j, k + 1)), k + 1];
        } catch (_) {
          return [undefined, k + 1];
        }
      }
    }
  }
  return [undefined, text.length];
}

function llama3Call(value) {
  if (!isObject(value) || Object.keys(value).length !== 2 || !('name' in value)) return [null, 'not a call object'];
  if (!('parameters' in value) && !('arguments' in value)) return [null, 'not a call object'];
  return namedCall(value, ['parameters', 'arguments']);
}

// After `[TOOL_CALLS]` at `i`: [call or calls, reason, end].
function mistralCall(text, i) {
  const rest = text.slice(i).trimStart();
  const lead = text.length - i - rest.length;
  if (rest === '') return [null, 'nothing after [TOOL_CALLS]', text.length];
  if (rest.startsWith('[')) {
    const [value, end] = jsonAt(text, i);
    if (!Array.isArray(value) || value.length === 0) {
      return [null, '[TOOL_CALLS] is not followed by a list of calls', end];
    }
    const calls = [];
    for (const item of value) {
      const [call, reason] = namedCall(item, ['arguments']);
      if (call === null) return [null, reason, end];
      calls.push(call);
    }
    return [calls, null, end];
  }
  // Letters, digits, `_`, `.`, `-` (the engine has no Unicode property escapes:
  // a non-ASCII letter is one with case).
  const nameChar = (c) => /[A-Za-z0-9_.-]/.test(c) || (c > '\u007f' && c.toLowerCase() !== c.toUpperCase());
  let n = 0;
  while (n < rest.length && nameChar(rest[n])) n++;
  if (n === 0 || !rest.slice(n).startsWith('[ARGS]') || new TextEncoder().encode(rest.slice(0, n)).length > MAX_NAME_BYTES) {
    return [null, '[TOOL_CALLS] is followed by neither a list nor `name[ARGS]`', i + lead + Math.max(n, 1)];
  }
  const start = i + lead + n + '[ARGS]'.length;
  const [value, end] = jsonAt(text, start);
  if (!isObject(value)) return [null, '[ARGS] is not a JSON object', end];
  return [{ id: null, name: rest.slice(0, n), arguments: text.slice(start, end).trim() }, null, end];
}

// Text with calls in `format`: [[kind, value]] in order.
function readCalls(format, text) {
  const events = [];
  const marker = format === 'llama3' ? '<|python_tag|>' : MARKERS[format];
  let mayStart = true;
  let i = 0;
  const emitText = (piece) => {
    if (!piece) return;
    if (piece.trim()) mayStart = false;
    events.push(['text', piece]);
  };
  while (i < text.length) {
    if (format === 'llama3' && mayStart) {
      let j = i;
      while (j < text.length && /\s/.test(text[j])) j++;
      if (j < text.length && text[j] === '{') {
        emitText(text.slice(i, j));
        const [value, end] = jsonAt(text, j);
        const [call] = value === undefined ? [null] : llama3Call(value);
        if (call !== null) {
          events.push(['call', call]);
          mayStart = true;
        } else {
          emitText(text.slice(j, end));
          mayStart = false;
        }
        i = end;
        continue;
      }
      if (j === text.length) {
        emitText(text.slice(i));
        break;
      }
    }
    const at = text.indexOf(marker, i);
    if (at < 0) {
      emitText(text.slice(i));
      break;
    }
    emitText(text.slice(i, at));
    i = at + marker.length;
    let call;
    let reason;
    let end;
    if (format === 'hermes') {
      const close = text.indexOf('</tool_call>', i);
      end = close >= 0 ? close + '</tool_call>'.length : text.length;
      const body = close >= 0 ? text.slice(i, close) : text.slice(i);
      try {
        [call, reason] = namedCall(JSON.parse(body.trim()), ['arguments', 'parameters']);
      } catch (e) {
        [call, reason] = [null, `not JSON: ${e.message}`];
      }
    } else if (format === 'llama3') {
      let value;
      [value, end] = jsonAt(text, i);
      [call, reason] = value === undefined ? [null, 'not JSON'] : llama3Call(value);
    } else {
      [call, reason, end] = mistralCall(text, i);
    }
    const raw = marker + text.slice(i, end);
    i = end;
    if (call === null) {
      events.push(['malformed', [raw, reason]]);
      mayStart = false;
    } else {
      for (const c of Array.isArray(call) ? call : [call]) events.push(['call', c]);
      mayStart = true;
    }
  }
  return events;
}

// A whole output: [[kind, value]], kind one of text, reasoning, call, malformed.
function parseOutput(format, tags, inReasoning, output) {
  const events = [];
  let rest = output;
  if (tags !== null) {
    const [start, end] = tags;
    let opened = inReasoning;
    if (!opened && rest.trimStart().startsWith(start)) {
      rest = rest.trimStart().slice(start.length);
      opened = true;
    }
    if (opened) {
      const at = rest.indexOf(end);
      const reasoning = at >= 0 ? rest.slice(0, at) : rest;
      rest = at >= 0 ? rest.slice(at + end.length) : '';
      if (reasoning.trim()) events.push(['reasoning', reasoning.trim()]);
    }
  }
  if (format === null) {
    if (rest) events.push(['text', rest]);
    return events;
  }
  return events.concat(readCalls(format, rest));
}

// What a call does with tools: the format, whether the template reads `tools`
// itself, and whether the model may call any.
function toolsOf(model, spec, template, params) {
  const name = stringKey(model, spec, 'tool_call_format');
  let named = null;
  if (name !== null) {
    named = formatFromName(name);
    if (named === null) {
      const known = Object.values(FORMAT_NAMES).flat().join(', ');
      throw invalid(`\`tool_call_format\` of \`${model.name}\` is \`${name}\`, not one of: ${known}`);
    }
  }
  const detected = detectFormat(template);
  return {
    format: named ?? detected ?? 'hermes',
    native: template.includes('tools'),
    active: params.tools.length > 0 && params.toolChoice.tag !== 'none',
  };
}

function constraintFor(tools, params) {
  if (!tools.active) return undefined;
  const choice = params.toolChoice;
  let specs;
  let lazy;
  if (choice.tag === 'required') {
    [specs, lazy] = [toolSpecs(params.tools, null), false];
  } else if (choice.tag === 'named') {
    [specs, lazy] = [toolSpecs(params.tools, choice.val), false];
  } else if (choice.tag === 'auto' && params.responseFormat.tag === 'text' && MARKERS[tools.format]) {
    [specs, lazy] = [toolSpecs(params.tools, null), true];
  } else {
    return undefined;
  }
  const [prefix, schema, suffix] = constraintOf(tools.format, specs);
  return { prefix, schema, suffix, lazy };
}

// The engine's whole output: reasoning and calls taken out, then clembench's rules.
function readOutput(model, params, request, raw) {
  const spec = parseSpec(model);
  let template = '';
  try {
    template = chooseTemplate(model, spec);
  } catch (_) {
    template = '';
  }
  const tools = toolsOf(model, spec, template, params);
  const start = stringKey(model, spec, 'cot_start_tag') || null;
  const end = stringKey(model, spec, 'cot_end_tag') || null;
  let tags = null;
  if (start && end) tags = [start, end];
  else if (!end && template.includes('</think>')) tags = ['<think>', '</think>'];
  const prompt = request.tag === 'prompt' ? request.val.text : '';
  const inReasoning = tags !== null && prompt.trimEnd().endsWith(tags[0]);
  let text = '';
  let reasoning = '';
  const calls = [];
  for (const [kind, value] of parseOutput(tools.active ? tools.format : null, tags, inReasoning, raw)) {
    if (kind === 'text') text += value;
    else if (kind === 'reasoning') reasoning += value;
    else if (kind === 'call') calls.push({ id: value.id ?? '', name: value.name, arguments: value.arguments });
    else {
      log('warn', `\`${model.name}\` wrote a tool call that is not one (${value[1]}); kept as text`);
      text += value[0];
    }
  }
  return completion(new PostProcess(model, tags !== null).apply(text), reasoning, calls);
}

const RESERVED = ['messages', 'tools', 'documents', 'add_generation_prompt'];

// The variables transformers passes a chat template, in its order; the entry's
// `chat_template_kwargs` last (they may override a token, as there).
function templateContext(model, spec, messages, tools, toolList) {
  let kwargs = spec.chat_template_kwargs;
  if (kwargs === undefined || kwargs === null) kwargs = {};
  if (typeof kwargs !== 'object' || Array.isArray(kwargs)) {
    throw invalid(`\`chat_template_kwargs\` of \`${model.name}\` must be an object, found ${JSON.stringify(kwargs)}`);
  }
  for (const key of RESERVED) {
    if (Object.prototype.hasOwnProperty.call(kwargs, key)) {
      throw invalid(`\`chat_template_kwargs\` of \`${model.name}\` sets \`${key}\`, which lmhost passes itself`);
    }
  }
  const last = messages[messages.length - 1];
  const endsOnAssistant = last !== undefined && last.role === 'assistant' && (last.toolCalls ?? []).length === 0;
  const shown = tools.native ? messages : fallbackMessages(messages, tools.format, tools.active ? toolList : []);
  const mistralIds = tools.native && tools.format === 'mistral';
  return {
    messages: shown.map((m) => messageJson(m, mistralIds)),
    tools: tools.active && tools.native ? toolList.map(toolJson) : null,
    documents: null,
    add_generation_prompt: !endsOnAssistant,
    bos_token: model.bosToken ?? '',
    eos_token: model.eosToken ?? '',
    ...kwargs,
  };
}

// The prompt cut just after the final assistant message's text, so the model
// goes on with it (transformers' `continue_final_message`).
function continueFinal(model, rendered, last) {
  const text = last.trim();
  const at = rendered.lastIndexOf(text);
  if (at < 0) {
    throw invalid(
      `the chat of \`${model.name}\` ends on an assistant message to continue, but its chat template ` +
        'does not write that message\'s text into the prompt',
    );
  }
  return rendered.slice(0, at + text.length);
}

function shapeRequest(model, messages, params) {
  const spec = parseSpec(model);
  const template = chooseTemplate(model, spec);
  const tools = toolsOf(model, spec, template, params);
  const context = templateContext(model, spec, messages, tools, params.tools);
  let text;
  try {
    text = renderTemplate(template, JSON.stringify(context));
  } catch (e) {
    const why = e && Object.prototype.hasOwnProperty.call(e, 'payload') ? e.payload : String(e);
    throw invalid(`chat template of \`${model.name}\` failed to render: ${why}`);
  }
  if (!context.add_generation_prompt) {
    text = continueFinal(model, text, messages[messages.length - 1].content);
  }
  // A template that writes the BOS token itself must not get a second one.
  const bos = model.bosToken;
  const startsWithBos = typeof bos === 'string' && bos.length > 0 && text.startsWith(bos);
  return {
    tag: 'prompt',
    val: { text, stop: params.stop, addBos: model.addBos && !startsWithBos, constraint: constraintFor(tools, params) },
  };
}

function parseResponse(model, params, request, raw) {
  return readOutput(model, params, request, raw);
}

// The exported resource: a class; the WIT constructor is the JS constructor (it
// cannot fail: throwing there traps). This one buffers: `push` emits nothing and
// `finish` returns the whole post-processed text.
class ResponseStream {
  constructor(model, params, request) {
    this.model = model;
    this.params = params;
    this.request = request;
    this.raw = '';
  }

  push(chunk) {
    this.raw += chunk;
    return { text: '', reasoning: '', toolCalls: [] };
  }

  finish() {
    return readOutput(this.model, this.params, this.request, this.raw);
  }
}

// The exported interface `model-adapter` is the camelCase named export `modelAdapter`.
export const modelAdapter = { shapeRequest, parseResponse, ResponseStream };
