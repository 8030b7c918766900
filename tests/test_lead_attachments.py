"""Attachments: evidence files on a lead, limited in type and size, served only as downloads."""

from tests.conftest import Platform
from tests.test_lead_workflow import submit

PDF = b"%PDF-1.7\n1 0 obj << >> endobj\ntrailer << >>\n%%EOF\n"


async def upload(platform: Platform, lead: dict, data: bytes, content_type: str,
                 who: str = "scout", filename: str = "brochure.pdf"):
    return await platform.scouting.post(
        f"/v1/leads/{lead['id']}/attachments", params={"filename": filename}, content=data,
        headers={**platform.auth(who), "Content-Type": content_type})


async def test_a_scout_attaches_a_pdf_and_a_manager_downloads_it(platform: Platform) -> None:
    lead = await submit(platform)
    stored = await upload(platform, lead, PDF, "application/pdf", filename="../../etc/brochure.pdf")
    assert stored.status_code == 201, stored.text
    assert stored.json()["filename"] == "brochure.pdf" and stored.json()["size"] == len(PDF)
    listed = (await platform.scouting.get(f"/v1/leads/{lead['id']}/attachments",
                                          headers=platform.auth("manager"))).json()
    assert [a["id"] for a in listed] == [stored.json()["id"]]
    file = await platform.scouting.get(f"/v1/leads/{lead['id']}/attachments/{listed[0]['id']}",
                                       headers=platform.auth("manager"))
    assert file.content == PDF
    assert file.headers["content-disposition"].startswith("attachment;")
    assert file.headers["x-content-type-options"] == "nosniff"
    other = await platform.scouting.get(f"/v1/leads/{lead['id']}/attachments/{listed[0]['id']}",
                                        headers=platform.auth("other_partner"))
    assert other.status_code == 404


async def test_files_of_the_wrong_type_size_or_content_are_refused(platform: Platform) -> None:
    lead = await submit(platform)
    cases = [
        (b"MZ\x90\x00 windows program", "application/x-msdownload", 415),
        (b"<html><script>alert(1)</script>", "text/html", 415),
        (b"not really a pdf", "application/pdf", 422),
        (b"\xff\xfe\xfa invalid utf8", "text/plain", 422),
        (b"", "text/plain", 422),
        (b"%PDF-" + b"0" * (5 * 1024 * 1024), "application/pdf", 413),
    ]
    for data, content_type, status in cases:
        answer = await upload(platform, lead, data, content_type)
        assert answer.status_code == status, (content_type, answer.text)
        assert answer.headers["content-type"] == "application/problem+json"
    listed = await platform.scouting.get(f"/v1/leads/{lead['id']}/attachments",
                                         headers=platform.auth("scout"))
    assert listed.json() == []


async def test_ops_and_other_scouts_cannot_attach(platform: Platform) -> None:
    lead = await submit(platform)
    assert (await upload(platform, lead, PDF, "application/pdf", who="ops")).status_code == 403
    assert (await upload(platform, lead, PDF, "application/pdf",
                         who="other_scout")).status_code == 404
