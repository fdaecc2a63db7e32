/**
 * WeChat mini-program customer-service messages (小程序客服消息): the message push (XML or JSON; plain, compatible or
 * safe mode) in, the customer-service send API out. Callback URL: /webhooks/<id>.
 */
import { z } from 'zod';
import { defineAdapter } from '../types.js';
import { WechatChannelAdapter, wechatOptionsSchema, type WechatProduct } from '../shared/wechat-channel.js';
import { decodeMiniProgramPush, replyWindowMs } from './decode.js';

export const MiniProgramOptions = wechatOptionsSchema('mini-program admin → 开发 → 开发管理 → 开发设置').and(
  z.object({
    dataFormat: z
      .enum(['auto', 'json', 'xml'])
      .default('auto')
      .describe('Data format chosen in the message-push settings (auto detects it per request)'),
  }),
);

const miniProgram: WechatProduct = {
  decode: decodeMiniProgramPush,
  dataFormat: 'auto',
  replyWindowMs,
  async linkBody(content, uploadThumb) {
    if (content.pagePath) {
      // A mini-program card opens a page of this mini-program; its thumbnail must be an uploaded image.
      const thumbMediaId = await uploadThumb();
      if (!thumbMediaId) return undefined;
      return { msgtype: 'miniprogrampage', miniprogrampage: { title: content.title, pagepath: content.pagePath, thumb_media_id: thumbMediaId } };
    }
    if (!content.url) return undefined;
    return {
      msgtype: 'link',
      link: { title: content.title, description: content.description ?? '', url: content.url, thumb_url: content.thumbUrl ?? '' },
    };
  },
};

export default defineAdapter({
  type: 'wechat-miniprogram',
  description: 'WeChat mini-program customer service: signed/encrypted XML or JSON push in, customer-service messages out (48 h window)',
  options: MiniProgramOptions,
  create: (instance, ctx) => new WechatChannelAdapter(instance.id, instance.type, instance.options, ctx, miniProgram),
});
