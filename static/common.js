// Shared by the pages: POST with the page's control token, GET of JSON, the camera's URLs, and a status line.
"use strict";

const controlToken = document.querySelector('meta[name="control-token"]').content;

// A camera's page (/cam/<name>/...) sends its controls to that camera; the original pages to the default.
function cameraUrl(path) {
  return (document.body.dataset.cameraBase || "") + path;
}

// "&camera=<name>" for the lists of a camera's page when the server has several cameras, else "".
function cameraFilter(separator) {
  const name = document.body.dataset.cameraFilter;
  return name ? `${separator}camera=${encodeURIComponent(name)}` : "";
}

async function post(url, fields = {}, headers = {}) {
  return answerOf(url, await fetch(url, {
    method: "POST",
    headers: { "X-Control-Token": controlToken, ...headers },
    body: new URLSearchParams(fields),
  }));
}

async function getJSON(url) {
  return answerOf(url, await fetch(url));
}

// The JSON of an answer; an Error with the server's message when it refused.
async function answerOf(url, response) {
  const body = await response.json().catch(() => ({}));
  if (response.status === 401 && body.login) {
    // The login ended (logout elsewhere, or a server restart): log in again, then come back here.
    window.location.assign(`/login?next=${encodeURIComponent(window.location.pathname + window.location.search)}`);
  }
  if (!response.ok) {
    throw new Error(body.error || `${url} answered ${response.status}`);
  }
  return body;
}

function say(text) {
  document.getElementById("message").textContent = text;
}

async function run(action) {
  try {
    await action();
  } catch (error) {
    say(error.message);
  }
}

function formatTime(unixSeconds) {
  return new Date(unixSeconds * 1000).toLocaleString();
}

function formatSize(bytes) {
  if (bytes === null || bytes === undefined) return "";
  const units = ["B", "KB", "MB", "GB"];
  let value = bytes;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit += 1;
  }
  return `${value.toFixed(unit ? 1 : 0)} ${units[unit]}`;
}
