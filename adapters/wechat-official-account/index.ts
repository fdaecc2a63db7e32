/**
 * WeChat official account (公众号 / 服务号): the server-configuration push (XML; plain, compatible or safe mode)
 * in, the customer-service message API out. Callback URL: /webhooks/<id>.
 */
import { defineAdapter } from '../types.js';
import { WechatChannelAdapter, wechatOptionsSchema, type WechatProduct } from '../shared/wechat-channel.js';
import { closesReplyWindow, decodeOfficialAccountPush, replyWindowMs } from './decode.js';

export const OfficialAccountOptions = wechatOptionsSchema('official account console → 设置与开发 → 基本配置');

const officialAccount: WechatProduct = {
  decode: decodeOfficialAccountPush,
  dataFormat: 'xml',
  closesReplyWindow,
  replyWindowMs,
  async linkBody(content, uploadThumb) {
    if (content.appId && content.pagePath) {
      // Mini-program card: appid, pagepath and a thumbnail image are all required.
      const thumbMediaId = await uploadThumb();
      if (!thumbMediaId) return undefined;
      return { msgtype: 'miniprogrampage', miniprogrampage: { title: content.title, appid: content.appId, pagepath: content.pagePath, thumb_media_id: thumbMediaId } };
    }
    if (!content.url) return undefined;
    // An external link is a one-article "news" message.
    return {
      msgtype: 'news',
      news: { articles: [{ title: content.title, description: content.description ?? '', url: content.url, picurl: content.thumbUrl ?? '' }] },
    };
  },
};

export default defineAdapter({
  type: 'wechat-official-account',
  description: 'WeChat official account: signed/encrypted XML push in, customer-service messages out (48 h window)',
  options: OfficialAccountOptions,
  create: (instance, ctx) => new WechatChannelAdapter(instance.id, instance.type, instance.options, ctx, officialAccount),
});
