"""The pages' own words, Vietnamese first and English beside them.

Labels that belong to the data (statuses, events, categories, agencies, wards, the metrics' fields) come
with the data in both languages; only the pages' furniture is here.
"""

from __future__ import annotations

LANGS = ("vi", "en")
DEFAULT_LANG = "vi"

MESSAGES: dict[str, dict[str, str]] = {
    # Furniture
    "site_name": {"vi": "Phản ánh hiện trường", "en": "Field reports"},
    "nav_map": {"vi": "Bản đồ", "en": "Map"},
    "nav_stats": {"vi": "Thống kê", "en": "Statistics"},
    "nav_label": {"vi": "Điều hướng", "en": "Navigation"},
    "switch_to": {"vi": "English", "en": "Tiếng Việt"},
    "switch_to_title": {"vi": "Switch to English", "en": "Chuyển sang tiếng Việt"},
    "dash": {"vi": "—", "en": "—"},
    "not_found_title": {"vi": "Không tìm thấy", "en": "Not found"},
    "report_not_found": {"vi": "Không tìm thấy phản ánh này.", "en": "There is no such report."},
    "back_to_map": {"vi": "Về bản đồ", "en": "Back to the map"},
    "error_title": {"vi": "Lỗi", "en": "Error"},
    # The map page
    "map_title": {"vi": "Bản đồ phản ánh", "en": "Map of reports"},
    "filters": {"vi": "Bộ lọc", "en": "Filters"},
    "category": {"vi": "Lĩnh vực", "en": "Category"},
    "all_categories": {"vi": "Tất cả lĩnh vực", "en": "All categories"},
    "status": {"vi": "Trạng thái", "en": "Status"},
    "all_statuses": {"vi": "Tất cả trạng thái", "en": "All statuses"},
    "open_statuses": {"vi": "Đang chờ xử lý (chưa xong)", "en": "Open (not finished)"},
    "period_from": {"vi": "Từ ngày", "en": "From"},
    "period_to": {"vi": "Đến ngày", "en": "To"},
    "reset": {"vi": "Xoá bộ lọc", "en": "Clear filters"},
    "map_label": {"vi": "Bản đồ các phản ánh", "en": "Map of the reports"},
    "loading": {"vi": "Đang tải…", "en": "Loading…"},
    "shown": {"vi": "{n} phản ánh trong vùng bản đồ", "en": "{n} reports in view"},
    "shown_clusters": {"vi": "{n} phản ánh trong vùng bản đồ (phóng to để xem từng phản ánh)",
                       "en": "{n} reports in view (zoom in to see each one)"},
    "truncated": {"vi": "chỉ hiển thị {n} phản ánh đầu tiên", "en": "only the first {n} are shown"},
    "load_error": {"vi": "Không tải được dữ liệu bản đồ.", "en": "The map data could not be loaded."},
    "cluster_title": {"vi": "{n} phản ánh; bấm để phóng to", "en": "{n} reports; click to zoom in"},
    "agency": {"vi": "Đơn vị xử lý", "en": "Agency"},
    "no_agency": {"vi": "chưa phân công", "en": "not assigned yet"},
    "created_at": {"vi": "Gửi lúc", "en": "Submitted"},
    "routed_at": {"vi": "Chuyển xử lý lúc", "en": "Sent to agency"},
    "acknowledged_at": {"vi": "Tiếp nhận lúc", "en": "Acknowledged"},
    "resolved_at": {"vi": "Xử lý xong lúc", "en": "Resolved"},
    "closed_at": {"vi": "Đóng lúc", "en": "Closed"},
    "due_at": {"vi": "Hạn xử lý", "en": "Due"},
    "details": {"vi": "Xem chi tiết", "en": "Details"},
    "supporters": {"vi": "Người cùng phản ánh", "en": "Residents who reported it too"},
    "no_js": {"vi": "Bản đồ cần JavaScript.", "en": "The map needs JavaScript."},
    # The report page
    "report_title": {"vi": "Phản ánh {code}", "en": "Report {code}"},
    "ward": {"vi": "Phường/xã", "en": "Ward/commune"},
    "address": {"vi": "Địa chỉ", "en": "Address"},
    "description": {"vi": "Nội dung", "en": "Description"},
    "residents_photos": {"vi": "Ảnh người dân gửi", "en": "The resident's photos"},
    "resolution_photos": {"vi": "Ảnh kết quả xử lý", "en": "Photos of the fix"},
    "no_photos": {"vi": "Chưa có ảnh.", "en": "No photos yet."},
    "photo_processing": {"vi": "Ảnh đang được xử lý", "en": "Photo being processed"},
    "photo_failed": {"vi": "Không xử lý được ảnh", "en": "Photo could not be processed"},
    "timeline": {"vi": "Quá trình xử lý", "en": "Timeline"},
    "duplicate_of": {"vi": "Trùng với phản ánh", "en": "Duplicate of report"},
    "location": {"vi": "Vị trí", "en": "Location"},
    "location_approximate": {
        "vi": "Vị trí gần đúng: chỉ biết phường/xã theo địa chỉ người dân gửi; phản ánh nằm trong vòng {metres} m "
              "quanh điểm này.",
        "en": "Approximate location: only the ward or commune is known, from the address the resident gave; the "
              "report is within {metres} m of this point."},
    "overdue": {"vi": "quá hạn", "en": "overdue"},
    # The accountability page
    "stats_title": {"vi": "Thời gian xử lý của các đơn vị", "en": "How fast each agency resolves reports"},
    "stats_intro": {
        "vi": "Mỗi đơn vị được tính theo hai đồng hồ: đồng hồ của người dân chạy từ lúc gửi phản ánh đến lúc "
              "xử lý xong; đồng hồ của đơn vị chỉ tính thời gian phản ánh nằm trong tay đơn vị đó (từ lúc được "
              "chuyển đến cho đến khi xử lý xong hoặc chuyển đi), theo giờ làm việc. Phản ánh chưa xử lý vẫn "
              "được tính, để không đơn vị nào trông nhanh hơn nhờ để tồn những việc khó.",
        "en": "Each agency is measured on two clocks: the resident's clock runs from submission to resolution; "
              "the agency's clock counts only the time a report was in that agency's hands (from each routing "
              "or transfer to it until it resolved it or passed it on), in working hours. Reports still open "
              "count too, so that no agency looks faster by leaving hard tickets open."},
    "stats_dash": {"vi": "“—” nghĩa là chưa đủ dữ liệu.", "en": "“—” means not enough data yet."},
    "methodology": {"vi": "Phương pháp tính: xem mục Methodology trong README của dự án.",
                    "en": "Methodology: see the Methodology section of the project's README."},
    "methodology_link": {"vi": "Định nghĩa các chỉ số", "en": "How the figures are defined"},
    "period": {"vi": "Khoảng thời gian", "en": "Period"},
    "apply": {"vi": "Xem", "en": "Show"},
    "leaderboard": {"vi": "Bảng xếp hạng các đơn vị", "en": "Agency leaderboard"},
    "leaderboard_hint": {"vi": "Bấm vào tiêu đề cột để sắp xếp.", "en": "Click a column header to sort."},
    "whole_city": {"vi": "Toàn thành phố", "en": "Whole city"},
    "trend": {"vi": "Diễn biến theo tháng", "en": "Monthly trend"},
    "download_csv": {"vi": "Tải dữ liệu CSV", "en": "Download the CSV"},
    "as_of": {"vi": "Số liệu tính đến {t}", "en": "Figures as of {t}"},
    "stats_error": {"vi": "Chưa tải được số liệu thống kê.", "en": "The figures could not be loaded yet."},
    "no_data": {"vi": "Chưa có dữ liệu.", "en": "No data yet."},
}


def message(key: str, lang: str) -> str:
    entry = MESSAGES[key]
    return entry.get(lang) or entry[DEFAULT_LANG]


def pick(label, lang: str) -> str:
    """A {vi, en} label from the data in `lang` (Vietnamese when English is missing); a plain string as is."""
    if label is None:
        return ""
    if isinstance(label, dict):
        return label.get(lang) or label.get(DEFAULT_LANG) or ""
    return str(label)
