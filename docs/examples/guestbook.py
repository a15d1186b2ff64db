"""Templates, forms with XSRF protection, and a signed login cookie.

``python guestbook.py`` serves http://127.0.0.1:8000/ (this machine only).
"""

import asyncio
from typing import Optional

import squall.template
import squall.web

PAGE = """<!doctype html>
<title>Guest book</title>
{% if current_user %}<p>Signed in as {{ current_user }}</p>{% end %}
<ul>{% for entry in entries %}<li>{{ entry }}</li>{% end %}</ul>
<form method="post" action="/sign">
  {% module xsrf_form_html() %}
  <input name="text" aria-label="Your message"> <button>Sign</button>
</form>
"""


class BaseHandler(squall.web.RequestHandler):
    def get_current_user(self) -> Optional[str]:
        name = self.get_signed_cookie("user")
        return name.decode() if name else None


class MainHandler(BaseHandler):
    def get(self) -> None:
        self.render("index.html", entries=self.application.settings["entries"])


class LoginHandler(BaseHandler):
    def post(self) -> None:
        self.set_signed_cookie("user", self.get_body_argument("name"))
        self.redirect("/")


class SignHandler(BaseHandler):
    @squall.web.authenticated
    def post(self) -> None:
        text = self.get_body_argument("text").strip()
        if not text:
            raise squall.web.HTTPError(400, "empty message")
        self.application.settings["entries"].append(f"{self.current_user}: {text}")
        self.redirect("/")


def make_app(cookie_secret: str = "change me: a long random string") -> squall.web.Application:
    return squall.web.Application(
        [(r"/", MainHandler), (r"/login", LoginHandler), (r"/sign", SignHandler)],
        cookie_secret=cookie_secret,
        xsrf_cookies=True,
        login_url="/login",
        template_loader=squall.template.DictLoader({"index.html": PAGE}),
        entries=[],
    )


async def main() -> None:
    make_app().listen(8000, address="127.0.0.1")
    await asyncio.Event().wait()


if __name__ == "__main__":
    asyncio.run(main())
