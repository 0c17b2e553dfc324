// `chat-template` in JavaScript: the lmhost adapter for local models, clembench's semantics.
//
// Request: the chat template is the one shipped in the model file, unless the
// registry entry sets `premade_chat_template: false` and a `custom_chat_template`
// (or the model file has none). The host renders it; the adapter picks it.
//
// Response, in clembench's order: strip whitespace; if `output_split_prefix` is set
// and present, keep what follows its last occurrence; if `cot_end_tag` is set and
// present, keep what follows its last occurrence (trimmed again); then remove every
// match of the `eos_to_cull` regex (ECMAScript dialect, flags `gu`).
//
// Bindings (componentize-js): WIT kebab-case becomes camelCase (`shape-request` ->
// `shapeRequest`, record field `spec-json` -> `specJson`); `option<T>` is
// `T | undefined`; a variant is `{ tag: 'kebab-name', val }`; an exported
// `result<T, E>` returns T or throws E; an imported one returns T or throws an Error
// whose `payload` is E.

import { renderTemplate } from 'lmhost:adapter/host@0.1.0';

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
  constructor(model) {
    const spec = parseSpec(model);
    this.splitPrefix = stringKey(model, spec, 'output_split_prefix') || null;
    this.cotEndTag = stringKey(model, spec, 'cot_end_tag') || null;
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

const completion = (text) => ({
  text,
  promptTokens: undefined,
  completionTokens: undefined,
  finishReason: undefined,
});

const RESERVED = ['messages', 'tools', 'documents', 'add_generation_prompt'];

// The variables transformers passes a chat template, in its order; the entry's
// `chat_template_kwargs` last (they may override a token, as there).
function templateContext(model, spec, messages) {
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
  const endsOnAssistant = messages.length > 0 && messages[messages.length - 1].role === 'assistant';
  return {
    messages: messages.map((m) => ({ role: m.role, content: m.content })),
    tools: null,
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
  const context = templateContext(model, spec, messages);
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
    val: { text, stop: params.stop, addBos: model.addBos && !startsWithBos },
  };
}

function parseResponse(model, raw) {
  return completion(new PostProcess(model).apply(raw));
}

// The exported resource: a class; the WIT constructor is the JS constructor (it
// cannot fail: throwing there traps). This one buffers: `push` emits nothing and
// `finish` returns the whole post-processed text.
class ResponseStream {
  constructor(model) {
    this.model = model;
    this.raw = '';
  }

  push(chunk) {
    this.raw += chunk;
    return '';
  }

  finish() {
    return completion(new PostProcess(this.model).apply(this.raw));
  }
}

// The exported interface `model-adapter` is the camelCase named export `modelAdapter`.
export const modelAdapter = { shapeRequest, parseResponse, ResponseStream };
