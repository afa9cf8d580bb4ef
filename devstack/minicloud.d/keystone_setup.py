#!/usr/bin/env python3
"""Create minicloud's service users and catalog in Keystone, idempotently.

Runs inside the minicloud venv after `keystone-manage bootstrap` (which made
the admin user, the admin project, the admin/member/reader roles, RegionOne
and the identity endpoints). Adds, like DevStack does:

- the `service` project and the `service` role;
- one user per service (nova, placement, glance, neutron) with the `admin`
  and `service` roles on the `service` project;
- the services compute, placement, image and network, each with a public
  endpoint in the region (as DevStack registers them; clients whose
  valid_interfaces are "internal,public" fall back to public).

One process instead of ~30 `openstack` CLI calls keeps a cold `up` fast.
Everything is looked up by name first, so a second run changes nothing.

Arguments come from the environment: OS_AUTH_URL, OS_PASSWORD (admin),
MINICLOUD_SERVICE_PASSWORD, MINICLOUD_REGION, and MINICLOUD_ENDPOINTS, a
JSON object {"compute": ["nova", "http://..."], ...}.
"""

import json
import os
import sys

from keystoneauth1 import session as ks_session
from keystoneauth1.identity import v3
from keystoneclient.v3 import client as ks_client


def find(manager, name, **kw):
    for item in manager.list(**kw):
        if item.name == name:
            return item
    return None


def main():
    env = os.environ
    auth = v3.Password(
        auth_url=env["OS_AUTH_URL"],
        username="admin",
        password=env["OS_PASSWORD"],
        project_name="admin",
        user_domain_id="default",
        project_domain_id="default",
    )
    ks = ks_client.Client(session=ks_session.Session(auth=auth))
    region = env.get("MINICLOUD_REGION", "RegionOne")
    service_password = env["MINICLOUD_SERVICE_PASSWORD"]
    endpoints = json.loads(env["MINICLOUD_ENDPOINTS"])

    # Each request costs a token validation: list once, create what is missing.
    domain = "default"
    project = find(ks.projects, "service", domain=domain)
    if project is None:
        project = ks.projects.create(name="service", domain=domain,
                                     description="minicloud services")
        print("created project service")
    roles = {r.name: r for r in ks.roles.list()}
    admin_role = roles.get("admin")
    if admin_role is None:
        sys.exit("keystone has no admin role: did keystone-manage bootstrap run?")
    service_role = roles.get("service")
    if service_role is None:
        service_role = ks.roles.create(name="service")
        print("created role service")

    users = {u.name: u for u in ks.users.list(domain=domain)}
    for user_name in ("nova", "placement", "glance", "neutron"):
        user = users.get(user_name)
        if user is None:
            user = ks.users.create(name=user_name, domain=domain,
                                   password=service_password,
                                   default_project=project)
            print("created user %s" % user_name)
        else:
            # keep the password in step with the config files
            ks.users.update(user, password=service_password)
        for role in (admin_role, service_role):
            ks.roles.grant(role, user=user, project=project)

    services = {s.type: s for s in ks.services.list()}
    all_endpoints = ks.endpoints.list()
    for stype, (sname, url) in endpoints.items():
        svc = services.get(stype)
        if svc is None:
            svc = ks.services.create(name=sname, type=stype,
                                     description="minicloud %s" % sname)
            print("created service %s (%s)" % (sname, stype))
        ep = None
        for e in all_endpoints:
            if (e.service_id == svc.id and e.interface == "public"
                    and getattr(e, "region_id", getattr(e, "region", None)) == region):
                ep = e
                break
        if ep is None:
            ks.endpoints.create(service=svc, url=url, interface="public",
                                region=region)
        elif ep.url != url:
            ks.endpoints.update(ep, url=url)
    print("keystone: service project, users and catalog in place")


if __name__ == "__main__":
    main()
