// Greets in several languages and counts the greetings, in TypeScript on Deno.
//
//     hyac invoke greet --data '{"name": "Ada", "language": "fr"}'

const GREETINGS: Record<string, string> = { en: "Hello", fr: "Bonjour", de: "Hallo", es: "Hola" };

interface Greeting {
  name?: string;
  language?: string;
}

export async function main(context: FunctionContext) {
  let body: Greeting = {};
  try {
    body = context.request.json<Greeting>() ?? {};
  } catch {
    // not JSON: the defaults
  }
  const language = body.language ?? context.env.DEFAULT_LANGUAGE ?? "en";
  const word = GREETINGS[language];
  if (!word) {
    return new context.Response({ status: 400, body: { error: `language is one of ${Object.keys(GREETINGS).join(", ")}` } });
  }
  const name = String(body.name ?? "world").slice(0, 100);
  const count = Number((await context.kv.get("greetings")) ?? 0) + 1;
  await context.kv.set("greetings", count);
  return { greeting: `${word}, ${name}!`, language, count };
}
