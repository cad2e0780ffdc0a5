"""One router per resource; `infra.http.app.create_app` combines them."""

from __future__ import annotations

from typing import Any

from infra.http.schemas import ErrorOut

_DESCRIPTIONS = {
    401: "Thiếu, sai, hết hạn hoặc đã thu hồi mã truy cập (kèm `WWW-Authenticate: Bearer`)",
    403: "Mã truy cập không có quyền với thao tác hoặc vụ việc này",
    404: "Không tìm thấy vụ việc",
    409: "Xung đột: mã sự kiện đã dùng cho nội dung khác, hoặc phiên bản mong đợi đã cũ",
    413: "Nội dung yêu cầu quá lớn (bị từ chối trước khi đọc)",
    422: "Dữ liệu không hợp lệ hoặc trái quy tắc; `field` nêu trường đầu tiên sai",
    503: "Kho dữ liệu tạm thời không truy cập được",
}


def error_responses(*statuses: int, rules: str = "") -> dict[int | str, dict[str, Any]]:
    """OpenAPI `responses=` entries for the error statuses a route can answer; `rules` names
    what the server checks beyond the schema (added to the 422's description)."""
    responses: dict[int | str, dict[str, Any]] = {}
    for status in statuses:
        description = _DESCRIPTIONS[status]
        if status == 422 and rules:
            description += ". Ngoài lược đồ / beyond the schema: " + rules
        responses[status] = {"model": ErrorOut, "description": description}
        if status == 401:
            responses[status]["headers"] = {
                "WWW-Authenticate": {"description": "Bearer", "schema": {"type": "string"}}
            }
    return responses
