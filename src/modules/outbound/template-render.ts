// Rendering mail templates (Liquid, through liquidjs). Templates are written by tenant admins and
// filled with values that come from strangers (a requester's name, a ticket's subject taken from
// inbound mail), so the engine is shut in: no tag reaches a file, every render is bounded, and the
// HTML body escapes every variable. Everything here is liquidjs's documented API (options, registerTag).
import { Liquid, type FS, type LiquidOptions, type Template } from 'liquidjs';
import { AppError, type FieldError } from '../../platform/errors.ts';

export const TEMPLATE_KINDS = ['acknowledgement', 'signature'] as const;
export type TemplateKind = (typeof TEMPLATE_KINDS)[number];

/** What a template can use, exactly these names (documented on the routes). */
export interface TemplateVariables {
  /** number "T-12", subject, status ("new", ...), priority ("normal", ...). */
  ticket: { number: string; subject: string; status: string; priority: string };
  requester: { name: string; email: string };
  /** The agent who writes (a reply) or is assigned; empty strings when there is none. */
  agent: { name: string; email: string };
  /** The mailbox the mail goes out from; empty strings when not known. */
  mailbox: { address: string; name: string };
  /** link: the ticket's console link, or empty when the install has no public URL. */
  portal: { link: string };
}

/** The template's three parts; html null: the mail has a text body only. */
export interface TemplateSource {
  subject: string;
  text: string;
  html: string | null;
}

export interface RenderedMail {
  subject: string;
  text: string;
  html: string | null;
}

/** What previews without a ticket render with (documented on the preview routes). */
export const SAMPLE_VARIABLES: TemplateVariables = {
  ticket: { number: 'T-1234', subject: 'Printer on floor 3 is jammed', status: 'new', priority: 'normal' },
  requester: { name: 'Carol Customer', email: 'carol@example.com' },
  agent: { name: 'Alex Agent', email: 'alex@example.com' },
  mailbox: { address: 'support@example.com', name: 'Support' },
  portal: { link: 'https://portal.example.com/requests/T-1234' },
};

/** Built-in acknowledgement of a new ticket, for tenants that have none of their own. */
export const BUILTIN_ACKNOWLEDGEMENT: TemplateSource = {
  // No ticket tag: the send path adds the stable subject tag to every mail (DESIGN §5.1).
  subject: 'We received your request: {{ ticket.subject }}',
  text: [
    'Hello{% if requester.name != blank %} {{ requester.name }}{% endif %},',
    '',
    'Thank you for contacting us. We received your request "{{ ticket.subject }}" and opened ticket ' +
      '{{ ticket.number }} for it. We will get back to you as soon as we can.',
    '',
    'To add information, simply reply to this email.',
    '{% if portal.link != blank %}',
    'You can follow your request here: {{ portal.link }}',
    '{% endif %}',
    '{{ mailbox.name | default: mailbox.address }}',
    '',
  ].join('\n'),
  html: [
    '<p>Hello{% if requester.name != blank %} {{ requester.name }}{% endif %},</p>',
    '<p>Thank you for contacting us. We received your request &ldquo;{{ ticket.subject }}&rdquo; and ' +
      'opened ticket <strong>{{ ticket.number }}</strong> for it. We will get back to you as soon as we can.</p>',
    '<p>To add information, simply reply to this email.</p>',
    '{% if portal.link != blank %}<p>You can follow your request ' +
      '<a href="{{ portal.link }}">here</a>.</p>{% endif %}',
    '<p>{{ mailbox.name | default: mailbox.address }}</p>',
    '',
  ].join('\n'),
};

/** Built-in signature under agents' replies. */
export const BUILTIN_SIGNATURE: TemplateSource = {
  subject: '',
  text: '-- \n{{ agent.name }}{% if mailbox.name != blank %}\n{{ mailbox.name }}{% endif %}\n',
  html: '<p>{{ agent.name }}{% if mailbox.name != blank %}<br>{{ mailbox.name }}{% endif %}</p>',
};

export const BUILTIN_TEMPLATES: Record<TemplateKind, TemplateSource> = {
  acknowledgement: BUILTIN_ACKNOWLEDGEMENT,
  signature: BUILTIN_SIGNATURE,
};

// Bounds of one render. memoryLimit counts what liquidjs allocates for the template (each range a
// loop walks, strings that filters build), so it stops a runaway loop deterministically, before the
// time limit; renderLimit (ms, checked before every node) stops what little work escapes it, such
// as a big body inside a loop. The rendered parts are bounded again after rendering.
const MEMORY_LIMIT = 100_000;
const RENDER_LIMIT_MS = 500;
/** Longest template source a part may have (the route schemas say the same). */
export const MAX_TEMPLATE_LENGTH = 100_000;
/** Longest rendered text or HTML body. */
export const MAX_RENDERED_LENGTH = 1_000_000;
/** RFC 5322's line limit, for the subject header. */
export const MAX_SUBJECT_LENGTH = 998;

// Never read: the tags that would read (include, render, layout) are refused below; should one get
// through anyway, it finds no file.
const NO_FILES: FS = {
  exists: async () => false,
  existsSync: () => false,
  readFile: async () => {
    throw new Error('mail templates cannot read files');
  },
  readFileSync: () => {
    throw new Error('mail templates cannot read files');
  },
  resolve: (_dir, file) => file,
  contains: async () => false,
  containsSync: () => false,
};

function engine(html: boolean): Liquid {
  const options: LiquidOptions = {
    fs: NO_FILES,
    root: [],
    partials: [],
    layouts: [],
    relativeReference: false,
    strictVariables: false,
    // A misspelt filter is an error when the template is saved, not a silently dropped one.
    strictFilters: true,
    ownPropertyOnly: true,
    // Dates never depend on the process's time zone or locale (DESIGN §3.6).
    timezoneOffset: 0,
    locale: 'en-US',
    parseLimit: 3 * MAX_TEMPLATE_LENGTH,
    renderLimit: RENDER_LIMIT_MS,
    memoryLimit: MEMORY_LIMIT,
    ...(html ? { outputEscape: 'escape' as const } : {}),
  };
  const liquid = new Liquid(options);
  for (const name of ['include', 'render', 'layout']) {
    liquid.registerTag(name, {
      parse(token) {
        throw new Error(`the ${token.name} tag is not available in mail templates`);
      },
      render: () => '',
    });
  }
  return liquid;
}

/** Subject and text: values as they are. */
const plain = engine(false);
/** HTML body: every {{ value }} HTML-escaped (a template may opt out with `| raw`). */
const escaping = engine(true);

const PARTS = [
  { key: 'subject', path: '/subject' },
  { key: 'text', path: '/text' },
  { key: 'html', path: '/html' },
] as const;

const validation = (message: string, errors: FieldError[]) =>
  new AppError('validation_failed', message, { details: { errors } });

const messageOf = (err: unknown): string => (err instanceof Error ? err.message : String(err)).slice(0, 500);

/**
 * Checks that every part parses and renders (with the sample variables, within the limits): a
 * validation error names each part that does not, with liquidjs's message (line and column).
 */
export function checkTemplate(source: TemplateSource): void {
  const errors: FieldError[] = [];
  for (const { key, path } of PARTS) {
    const text = source[key];
    if (text === null) continue;
    try {
      plain.parse(text);
    } catch (err) {
      errors.push({ path, message: messageOf(err) });
    }
  }
  if (errors.length === 0) {
    try {
      renderMailTemplate(source, SAMPLE_VARIABLES);
    } catch (err) {
      if (!(err instanceof AppError)) throw err;
      errors.push(...(err.details?.errors ?? []));
    }
  }
  if (errors.length > 0) {
    throw validation(
      `The template does not work: ${errors.map((e) => `${e.path} ${e.message}`).join('; ')}`,
      errors,
    );
  }
}

// Parsed templates, kept per engine: a tenant's few templates (and the built-ins) are rendered for
// every reply and acknowledgement, and parsing costs two to three times the render (measured on the
// built-ins: 51 against 15 µs for the signature, 79 against 31 µs for the acknowledgement). A parsed
// template holds no state of a render (liquidjs keeps the limits' counts in each render's context),
// so one serves every render. Least recently used out first; long sources are parsed every time,
// which keeps what the cache can hold to a few megabytes.
const PARSED_ENTRIES = 200;
const PARSED_MAX_SOURCE = 20_000;
const parsedBy = new WeakMap<Liquid, Map<string, Template[]>>();

function parsed(liquid: Liquid, source: string): Template[] {
  if (source.length > PARSED_MAX_SOURCE) return liquid.parse(source);
  let cache = parsedBy.get(liquid);
  if (!cache) parsedBy.set(liquid, (cache = new Map()));
  let templates = cache.get(source);
  if (templates) cache.delete(source);
  else {
    templates = liquid.parse(source);
    if (cache.size >= PARSED_ENTRIES) cache.delete(cache.keys().next().value!);
  }
  cache.set(source, templates);
  return templates;
}

function renderPart(liquid: Liquid, source: string, vars: TemplateVariables, path: string): string {
  let out: string;
  try {
    out = liquid.renderSync(parsed(liquid, source), vars);
  } catch (err) {
    throw validation(`${path} does not render: ${messageOf(err)}`, [{ path, message: messageOf(err) }]);
  }
  if (out.length > MAX_RENDERED_LENGTH) {
    const message = `renders to more than ${MAX_RENDERED_LENGTH} characters`;
    throw validation(`${path} ${message}`, [{ path, message }]);
  }
  return out;
}

/** One header line: control characters (CR and LF above all) become spaces, at most 998 characters. */
export function subjectLine(text: string): string {
  // eslint-disable-next-line no-control-regex
  const line = text.replace(/[\u0000-\u001f\u007f\u2028\u2029]+/g, ' ').trim();
  if (line.length <= MAX_SUBJECT_LENGTH) return line;
  // Never cut a surrogate pair in half.
  const cut = line.slice(0, MAX_SUBJECT_LENGTH);
  return (/[\ud800-\udbff]$/.test(cut) ? cut.slice(0, -1) : cut).trimEnd();
}

/**
 * Renders a template. The subject and the text are not escaped, every variable of the HTML body
 * is. Throws only AppError validation_failed, naming the part (`/subject`, `/text`, `/html`) that
 * failed to parse or render or went past a limit; sending mail uses renderForSending, which never throws.
 */
export function renderMailTemplate(t: TemplateSource, vars: TemplateVariables): RenderedMail {
  // A copy of plain data: the templates see the values and nothing of the objects behind them.
  const scope = JSON.parse(JSON.stringify(vars)) as TemplateVariables;
  // Cut before cleaning: a subject that renders to a megabyte is not flattened whole.
  const subject = renderPart(plain, t.subject, scope, '/subject').slice(0, 4 * MAX_SUBJECT_LENGTH);
  return {
    subject: subjectLine(subject),
    text: renderPart(plain, t.text, scope, '/text'),
    html: t.html === null ? null : renderPart(escaping, t.html, scope, '/html'),
  };
}

/**
 * For the send path: the tenant's template rendered, or, when there is none or it fails (a limit a
 * ticket's values push it past), the built-in template of the kind, with the reason. Never throws.
 */
export function renderForSending(
  template: TemplateSource | undefined,
  kind: TemplateKind,
  vars: TemplateVariables,
): RenderedMail & { fallbackReason: string | null } {
  let reason: string | null = null;
  if (template) {
    try {
      return { ...renderMailTemplate(template, vars), fallbackReason: null };
    } catch (err) {
      reason = messageOf(err);
    }
  }
  try {
    return { ...renderMailTemplate(BUILTIN_TEMPLATES[kind], vars), fallbackReason: reason };
  } catch (err) {
    // The built-ins render with any values; this is the guard that keeps the promise above.
    const text = kind === 'signature' ? vars.agent.name : `${vars.ticket.number} ${vars.ticket.subject}`;
    return { subject: subjectLine(text), text, html: null, fallbackReason: reason ?? messageOf(err) };
  }
}
