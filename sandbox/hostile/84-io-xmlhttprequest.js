// expect: ReferenceError
// message: XMLHttpRequest
function map(request) {
  const xhr = new XMLHttpRequest();
  xhr.open('GET', 'http://127.0.0.1:9/', false);
  xhr.send();
  return { targetUserIds: [xhr.responseText] };
}
