// A to-do list on Node 20, in the tenant's key-value store.
//
//     hyac invoke todos --data '{"title": "Write the docs"}'   -> 201 + the to-do
//     hyac invoke todos --method GET                             -> every to-do
//     hyac invoke todos --data '{"id": "ID", "done": true}'     -> marks it done

import { randomUUID } from "node:crypto";

/** @param {FunctionContext} context */
export async function main(context) {
  if (context.request.method === "GET") {
    const keys = await context.kv.list("todos/", 200);
    const todos = [];
    for (const key of keys) todos.push(await context.kv.get(key));
    return { todos };
  }
  let body;
  try {
    body = context.request.json();
  } catch {
    return new context.Response({ status: 400, body: { error: "send JSON" } });
  }
  if (!body || typeof body !== "object") {
    return new context.Response({ status: 400, body: { error: "send a JSON object" } });
  }
  if (body.id !== undefined) {
    const key = `todos/${String(body.id)}`;
    const todo = await context.kv.get(key);
    if (todo == null) return new context.Response({ status: 404, body: { error: "no such to-do" } });
    todo.done = Boolean(body.done);
    await context.kv.set(key, todo);
    return todo;
  }
  const title = typeof body.title === "string" ? body.title.trim() : "";
  if (!title || title.length > 200) {
    return new context.Response({ status: 422, body: { errors: { title: "1 to 200 characters" } } });
  }
  const todo = { id: randomUUID().slice(0, 8), title, done: false };
  await context.kv.set(`todos/${todo.id}`, todo);
  context.logger.info("added to-do %s", todo.id);
  return new context.Response({ status: 201, body: todo });
}
