from tests.conftest import auth


async def test_me(client, admin_key):
    r = await client.get("/api/me", headers=auth(admin_key))
    assert r.status_code == 200, r.text
    assert r.json()["isPlatformAdmin"] is True
