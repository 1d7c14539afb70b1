from tests.support.console import make_user, login, page_csrf
async def test_smoke(client, db):
    user = await make_user(db, "editor")
    r = await login(client, user.email)
    assert r.status_code == 303
    for path in ["/admin", "/admin/news", "/admin/news/new", "/admin/news/import", "/admin/issues", "/admin/issues/new"]:
        r = await client.get(path)
        assert r.status_code == 200, (path, r.text[-3000:])
    csrf = await page_csrf(client, "/admin/news/new")
    r = await client.post("/admin/news", data={"csrf_token": csrf, "title": "한강 축제", "summary": "요약", "body": "첫 문단\n\n둘째 <b>문단</b>", "link": "https://www.gimpo.go.kr/n/1"})
    assert r.status_code == 303, r.text[-2000:]
    r = await client.post("/admin/news", data={"csrf_token": csrf, "title": "두번째", "link": "https://www.gimpo.go.kr/n/2"})
    r = await client.get(r.headers["location"]); assert r.status_code == 200, r.text[-2000:]
    r = await client.post("/admin/issues", data={"csrf_token": csrf, "title": "3월 소식", "intro": "안녕"})
    assert r.status_code == 303, r.text[-2000:]
    loc = r.headers["location"]
    r = await client.get(loc); assert r.status_code == 200, r.text[-3000:]
    iid = loc.rsplit("/",1)[1]
    r = await client.post(loc, data={"csrf_token": csrf, "title": "3월 소식", "intro": "안녕", "op": "add:1"})
    assert r.status_code == 303, r.text[-3000:]
    r = await client.post(loc, data={"csrf_token": csrf, "title": "3월 소식", "intro": "안녕", "item": "1", "op": "add:2"})
    r = await client.post(loc, data={"csrf_token": csrf, "title": "3월 소식", "intro": "안녕", "item": ["1","2"], "op": "up:2"})
    r = await client.get(loc); assert r.status_code == 200; assert r.text.index('data-item-id="2"') < r.text.index('data-item-id="1"'), r.text
    r = await client.get(loc + "?view=text"); assert "한강 축제" in r.text
    r = await client.get(loc + "/preview?format=html"); assert r.status_code == 200 and "두번째" in r.text
    r = await client.post(loc + "/test-send", data={"csrf_token": csrf}); assert r.status_code == 303
    r = await client.post(loc + "/schedule", data={"csrf_token": csrf, "send_at": "2099-01-01T09:00"}); assert r.status_code == 422, r.text[-1000:]
    r = await client.post(loc + "/schedule", data={"csrf_token": csrf, "send_at": "2026-12-25T09:00"}); print(r.status_code, r.text[-1500:])
    r = await client.post(loc + "/send-now", data={"csrf_token": csrf}); assert r.status_code == 200, r.text[-2000:]
    r = await client.post(loc + "/send-now", data={"csrf_token": csrf, "confirmed": "yes"}); assert r.status_code == 303, r.text[-2000:]
    r = await client.get(loc); assert r.status_code == 200, r.text[-3000:]
    print(r.text[r.text.index('id="live"'):][:3000])
    r = await client.get(loc + "/live"); assert r.status_code == 200, r.text[-3000:]
