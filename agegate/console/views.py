"""Console pages. HTTP and HTML only: every decision goes through the same services as the API."""

from __future__ import annotations

import hmac
import logging
import secrets
from datetime import datetime
from functools import wraps
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from flask import (
    Blueprint,
    abort,
    flash,
    g,
    redirect,
    render_template,
    request,
    send_from_directory,
    session,
    url_for,
)
from redis.exceptions import RedisError
from werkzeug.exceptions import HTTPException

from agegate.api import services
from agegate.auth import public
from agegate.console import present
from agegate.errors import AgegateError, RateLimited, Unauthorized, log_unexpected

log = logging.getLogger("agegate.console")
HERE = Path(__file__).resolve().parent
STATIC_DIR = HERE / "static"

bp = Blueprint("console", __name__, url_prefix="/console", template_folder="templates")

# The only console endpoints reachable without a session.
OPEN_ENDPOINTS = frozenset({"console.login", "console.static"})


def now() -> datetime:
    """The service clock (tests run on a fixed one)."""
    return services().clock.now()


# -- session, CSRF and headers -------------------------------------------------------------
def csrf_token() -> str:
    """This browser session's CSRF token, made on first use."""
    if "csrf" not in session:
        session["csrf"] = secrets.token_urlsafe(32)
    return str(session["csrf"])


@bp.before_request
def require_session():
    """Resume the console session; send strangers to sign in; refuse forged forms."""
    g.console = services().console.resume(session.get("sid"))
    if g.console is None:
        session.pop("sid", None)
    if request.endpoint not in OPEN_ENDPOINTS and g.console is None:
        target = request.full_path if request.method == "GET" else None
        return redirect(url_for("console.login", next=target), code=303)
    if request.method == "POST":
        sent = request.form.get("csrf_token", "")
        expected = session.get("csrf", "")
        if not sent or not expected or not hmac.compare_digest(str(sent), str(expected)):
            return render_page("error.html", 403, title="Form refused",
                               message="This form could not be verified. Reload the page and "
                                       "try again.")
    return None


@bp.after_request
def harden(response):
    """No caching of case data; no framing; scripts and styles only from this service."""
    response.headers["Cache-Control"] = "no-store"
    response.headers["X-Frame-Options"] = "DENY"
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Referrer-Policy"] = "same-origin"
    response.headers["Content-Security-Policy"] = (
        "default-src 'none'; style-src 'self'; script-src 'self'; img-src 'self'; "
        "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
    )
    return response


@bp.context_processor
def template_globals() -> dict[str, Any]:
    """Values every console template may use."""
    return {"csrf_token": csrf_token, "present": present,
            "viewer": g.get("console")}


def render_page(template: str, status: int = 200, **context: Any):
    """Render a console template with a status code."""
    return render_template(f"console/{template}", **context), status


def admin_only(view):
    """Admin views: a reviewer gets a readable 403 page."""

    @wraps(view)
    def wrapper(*args: Any, **kwargs: Any):
        if not g.console.is_admin:
            abort(403)
        return view(*args, **kwargs)

    return wrapper


def safe_next(target: str | None) -> str:
    """Only redirect back into the console after sign-in (no open redirects)."""
    if target:
        parts = urlsplit(target)
        if not parts.scheme and not parts.netloc and parts.path.startswith("/console/"):
            return target.rstrip("?")
    return url_for("console.queue")


# -- errors as pages, never stack traces ---------------------------------------------------
@bp.errorhandler(AgegateError)
def domain_error(error: AgegateError):
    """A domain error (404, 409, ...) as a readable page."""
    return render_page("error.html", error.status, title="That did not work",
                       message=error.message)


@bp.errorhandler(HTTPException)
def http_error(error: HTTPException):
    """403/404/405 inside the console as pages."""
    messages = {403: "Only administrators may open this page.",
                404: "There is nothing at this address.",
                405: "This page does not accept that kind of request."}
    status = error.code or 500
    return render_page("error.html", status, title=error.name,
                       message=messages.get(status, "The request could not be processed."))


@bp.errorhandler(RedisError)
def storage_error(error: RedisError):
    """Redis is unavailable: ask to retry."""
    log.error("console storage unavailable: %s", type(error).__name__)
    return render_page("error.html", 503, title="Storage unavailable",
                       message="Storage is unavailable; try again shortly.")


@bp.errorhandler(Exception)
def unexpected(error: Exception):
    """Anything else: log the type, show a generic page."""
    log_unexpected(log, "console error", error)
    return render_page("error.html", 500, title="Something went wrong",
                       message="Something went wrong on our side. The error was logged.")


# -- static files, sign-in, sign-out -------------------------------------------------------
@bp.route("/static/<path:filename>", methods=["GET"])
@public
def static(filename: str):
    """The console's CSS and its one small script."""
    return send_from_directory(STATIC_DIR, filename, max_age=3600)


@bp.route("/login", methods=["GET", "POST"])
@public
def login():
    """Exchange a reviewer or admin token for a console session."""
    if request.method == "GET":
        if g.console is not None:
            return redirect(url_for("console.queue"))
        return render_page("login.html", next=request.args.get("next", ""))
    try:
        signed_in = services().console.sign_in(
            request.form.get("token", ""), request.remote_addr or "")
    except RateLimited as error:
        response = render_template("console/login.html", error=error.message,
                                   next=request.form.get("next", ""))
        return response, 429, error.headers
    except Unauthorized as error:
        return render_page("login.html", 401, error=error.message,
                           next=request.form.get("next", ""))
    # A fresh cookie (new CSRF token) on sign-in, so a planted pre-login cookie is worthless.
    session.clear()
    session.permanent = True
    session["sid"] = signed_in.session_id
    session["name"] = signed_in.name
    session["role"] = signed_in.role
    session["csrf"] = secrets.token_urlsafe(32)
    return redirect(safe_next(request.form.get("next")), code=303)


@bp.route("/logout", methods=["POST"])
@public
def logout():
    """Sign out: revoke the server-side session and drop the cookie."""
    services().console.sign_out(g.console)
    session.clear()
    flash("You are signed out.")
    return redirect(url_for("console.login"), code=303)


@bp.route("/", methods=["GET"])
@public
def home():
    """The console starts at the queue."""
    return redirect(url_for("console.queue"))


# -- the review queue and cases ------------------------------------------------------------
def _account(account_id: str | None) -> dict[str, Any] | None:
    """The account's summary (status, score, band), or None when the service has none."""
    if not account_id:
        return None
    try:
        return services().accounts.get(account_id)
    except AgegateError:
        return None


def _queue_row(case: dict[str, Any], moment: datetime) -> dict[str, Any]:
    """One queue line: the case plus its waiting time, deadline state and band."""
    created = present.parse_time(case.get("created_at"))
    band = case.get("band") or present.band_of(case.get("score"))
    return {
        **case,
        "band": band,
        "waiting": present.duration(moment - created) if created else "—",
        "deadline": present.deadline(case.get("due_at"), moment),
    }


@bp.route("/queue", methods=["GET"])
@public
def queue():
    """Open cases, highest priority first, optionally of one kind."""
    kind = request.args.get("kind") or None
    if kind is not None and kind not in present.KIND_LABELS:
        kind = None
    moment = now()
    cases = services().review.list_cases(status="open", limit=100, kind=kind)
    mine = [c for c in services().review.list_cases(status="claimed", limit=100)
            if c.get("claimed_by") == g.console.name]
    return render_page(
        "queue.html", title="Review queue", kind=kind,
        cases=[_queue_row(c, moment) for c in cases],
        mine=[_queue_row(c, moment) for c in mine],
    )


@bp.route("/claim-next", methods=["POST"])
@public
def claim_next():
    """Claim the top open case (of the chosen kind) and open it."""
    kind = request.form.get("kind") or None
    if kind is not None and kind not in present.KIND_LABELS:
        kind = None
    claimed = services().review.claim_next(g.console.name, kind=kind)
    if claimed is None:
        flash("The queue is empty: there is no open case to claim.")
        return redirect(url_for("console.queue", kind=kind), code=303)
    case, _lease = claimed
    return redirect(url_for("console.case", case_id=case["case_id"]), code=303)


def _case_page(case_id: str, status: int = 200, error: str | None = None, note: str = ""):
    """Render a case with its account, explanation, history, lease and allowed decisions."""
    case = services().review.get(case_id)
    moment = now()
    lease = present.parse_time(case.get("lease_expires_at"))
    lease_left = (lease - moment) if lease and lease > moment and case.get("status") == "claimed" \
        else None
    account = _account(case.get("account_id"))
    account_age = None
    if case.get("kind") == "parent_request" and not case["account_id"].startswith("unresolved:"):
        # A parent may delete or export only a minor's account: show what establishes its age.
        account_age = services().accounts.age_knowledge(case["account_id"])
    return render_page(
        "case.html", status, title=f"Case {case['case_id']}", case=case, account=account,
        account_age=account_age,
        band=(account or {}).get("band") or case.get("band") or present.band_of(case.get("score")),
        explanation=present.explain(case.get("top_signals")),
        history=list(case.get("history") or []),
        lease=lease, lease_left=lease_left,
        deadline=present.deadline(case.get("due_at"), moment),
        decisions=present.DECISIONS.get(case.get("kind", ""), []),
        age_signals=services().age_signals.signals(case["account_id"])
        if case.get("account_id") else [],
        assurance=services().assurance.for_account(case["account_id"])
        if case.get("account_id") else [],
        statement=services().appeals.statement(case),
        mine=case.get("status") == "claimed" and case.get("claimed_by") == g.console.name,
        error=error, note=note,
    )


@bp.route("/cases/<case_id>", methods=["GET"])
@public
def case(case_id: str):
    """One case."""
    return _case_page(case_id)


@bp.route("/cases/<case_id>/claim", methods=["POST"])
@public
def claim(case_id: str):
    """Claim this case; someone else's live claim is a readable 409."""
    try:
        services().review.claim(case_id, g.console.name)
    except AgegateError as error:
        if error.status == 404:
            raise
        return _case_page(case_id, error.status, error=error.message)
    return redirect(url_for("console.case", case_id=case_id), code=303)


@bp.route("/cases/<case_id>/decision", methods=["POST"])
@public
def decide(case_id: str):
    """Record a decision through the review service, as the signed-in reviewer."""
    decision = request.form.get("decision", "")
    note = request.form.get("note", "").strip()
    if decision in present.NOTE_REQUIRED and not note:
        return _case_page(case_id, 422, error="Write a note saying why before you confirm this.",
                          note=note)
    account_id = services().review.get(case_id).get("account_id")
    try:
        services().review.decide(case_id, g.console.name, decision, note)
    except AgegateError as error:
        if error.status == 404:
            raise
        message = error.message
        if error.fields:
            message += " " + " ".join(m for msgs in error.fields.values() for m in msgs)
        return _case_page(case_id, error.status, error=message, note=note)
    account = _account(account_id)
    outcome = f" Account {account_id} is now {account['status']}." if account else ""
    flash(f"Case {case_id} decided: {decision.replace('_', ' ')}.{outcome}")
    # A termination deletes the case with everything else held on the account, so the
    # reviewer goes back to the queue, where the next case is.
    return redirect(url_for("console.queue"), code=303)


# -- admin views ---------------------------------------------------------------------------
@bp.route("/deletions", methods=["GET"])
@public
@admin_only
def deletions():
    """Deletions and which downstream systems acknowledged them, overdue first."""
    show = request.args.get("status", "pending")
    if show not in ("pending", "completed", "all"):
        show = "pending"
    moment = now()
    rows = []
    for item in services().enforcement.list_deletions(
            status=None if show == "all" else show, limit=200):
        systems = item.get("systems") or {}
        done = sum(1 for state in systems.values() if state == "done")
        due = present.parse_time(item.get("due_at"))
        overdue = item.get("status") != "completed" and due is not None and due <= moment
        rows.append({**item, "acked": done, "total": len(systems), "overdue": overdue,
                     "deadline": present.deadline(item.get("due_at"), moment)
                     if item.get("status") != "completed" else None})
    rows.sort(key=lambda r: (not r["overdue"], r.get("due_at") or ""))
    return render_page("deletions.html", title="Deletions", rows=rows, show=show)


@bp.route("/parent-requests", methods=["GET"])
@public
@admin_only
def parent_requests():
    """Parents' requests: open ones by due date (legal deadline), then recent outcomes."""
    moment = now()
    service = services().parent_requests
    open_rows = [{**item, "deadline": present.deadline(item.get("due_at"), moment)}
                 for item in service.listing(overdue_only=False, limit=200)]
    decided = []
    for case in services().review.list_cases(status="decided", limit=100, kind="parent_request"):
        request_id = (case.get("ref") or {}).get("request_id")
        if not request_id:
            continue
        try:
            view = service.review_view(request_id)
        except AgegateError:
            continue  # the request's record has reached the end of its retention
        # Only these fields: the parent's free text and the child reference stay off the page.
        decided.append({
            "request_id": request_id, "status": view["status"],
            "request_type": view["request_type"], "due_at": view["due_at"],
            "outcome": view["outcome"], "case_id": case["case_id"],
            "decided_at": case.get("decided_at"), "decided_by": case.get("claimed_by"),
        })
    return render_page("parent_requests.html", title="Parent requests", open_rows=open_rows,
                       decided=decided)


@bp.route("/model", methods=["GET"])
@public
@admin_only
def model():
    """The loaded model, its calibration and the reviewer examples collected for it."""
    return render_page("model.html", title="Model", info=services().feedback.summary())
